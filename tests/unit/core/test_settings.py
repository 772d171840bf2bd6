import pytest

from heimdall.core.settings import InsecureSettingsError, Settings

STRONG = {
    "HEIMDALL_ENVIRONMENT": "production",
    "HEIMDALL_DATABASE_URL": "postgresql+psycopg://heimdall:s3cret-db@db:5432/heimdall",
    "HEIMDALL_BROKER_URL": "amqp://heimdall:s3cret-mq@rabbitmq:5672//",
    "HEIMDALL_S3_ACCESS_KEY": "heimdall-prod",
    "HEIMDALL_S3_SECRET_KEY": "a-long-random-secret",
    "HEIMDALL_API_TOKENS": "token-one,token-two",
}


def test_development_defaults_need_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDALL_ENVIRONMENT", "development")
    settings = Settings()
    assert settings.database_url.get_secret_value().startswith("postgresql+psycopg://")
    assert settings.min_receivers == 3


def test_production_with_real_secrets_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in STRONG.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert [t.get_secret_value() for t in settings.api_tokens] == ["token-one", "token-two"]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("HEIMDALL_S3_SECRET_KEY", "minioadmin", "HEIMDALL_S3_SECRET_KEY"),
        ("HEIMDALL_S3_ACCESS_KEY", "changeme", "HEIMDALL_S3_ACCESS_KEY"),
        ("HEIMDALL_BROKER_URL", "amqp://guest:guest@rabbitmq:5672//", "HEIMDALL_BROKER_URL"),
        (
            "HEIMDALL_DATABASE_URL",
            "postgresql+psycopg://postgres@db/heimdall",
            "HEIMDALL_DATABASE_URL",
        ),
        ("HEIMDALL_API_TOKENS", "", "HEIMDALL_API_TOKENS"),
    ],
)
def test_production_refuses_placeholders(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    for name, good in STRONG.items():
        monkeypatch.setenv(name, good)
    monkeypatch.setenv(variable, value)
    with pytest.raises(InsecureSettingsError, match=named):
        Settings()


def test_production_refuses_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, good in STRONG.items():
        if name != "HEIMDALL_S3_SECRET_KEY":
            monkeypatch.setenv(name, good)
    monkeypatch.delenv("HEIMDALL_S3_SECRET_KEY", raising=False)
    with pytest.raises(InsecureSettingsError, match="HEIMDALL_S3_SECRET_KEY"):
        Settings()
