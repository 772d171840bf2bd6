import pytest

from heimdall.core.settings import InsecureSettingsError, Settings

TOKEN_ONE = "token-one-" + "1" * 32
TOKEN_TWO = "token-two-" + "2" * 32
STRONG = {
    "HEIMDALL_ENVIRONMENT": "production",
    "HEIMDALL_DATABASE_URL": "postgresql+psycopg://heimdall:s3cret-db@db:5432/heimdall",
    "HEIMDALL_BROKER_URL": "amqp://heimdall:s3cret-mq@rabbitmq:5672//",
    "HEIMDALL_S3_ACCESS_KEY": "heimdall-prod",
    "HEIMDALL_S3_SECRET_KEY": "a-long-random-secret",
    "HEIMDALL_API_TOKENS": f"{TOKEN_ONE},{TOKEN_TWO}",
    "HEIMDALL_SIMULATOR_ENABLED": "false",
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
    assert [t.get_secret_value() for t in settings.api_tokens] == [TOKEN_ONE, TOKEN_TWO]


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
        ("HEIMDALL_API_TOKENS", "short-token", "HEIMDALL_API_TOKENS"),
        ("HEIMDALL_API_TOKENS", f"{TOKEN_ONE},abc", "HEIMDALL_API_TOKENS"),
        ("HEIMDALL_READ_TOKENS", "too-short", "HEIMDALL_READ_TOKENS"),
        ("HEIMDALL_S3_ACCESS_KEY", "heimdall", "HEIMDALL_S3_ACCESS_KEY"),
        ("HEIMDALL_S3_SECRET_KEY", "heimdall-dev-secret", "HEIMDALL_S3_SECRET_KEY"),
        ("HEIMDALL_SIMULATOR_ENABLED", "true", "HEIMDALL_SIMULATOR_ENABLED"),
        ("HEIMDALL_MAP_TILE_URL", "https://changeme/{z}/{x}/{y}.png", "HEIMDALL_MAP_TILE_URL"),
        (
            "HEIMDALL_REDIS_URL",
            "redis://:changeme@redis:6379/1",
            "HEIMDALL_REDIS_URL",
        ),
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


def test_refusal_names_settings_but_never_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, good in STRONG.items():
        monkeypatch.setenv(name, good)
    monkeypatch.setenv("HEIMDALL_API_TOKENS", "shortsecretvalue")
    monkeypatch.setenv("HEIMDALL_S3_SECRET_KEY", "heimdall-dev-secret")
    with pytest.raises(InsecureSettingsError) as refused:
        Settings()
    assert "shortsecretvalue" not in str(refused.value)
    assert "heimdall-dev-secret" not in str(refused.value)


def test_services_bind_to_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEIMDALL_BIND_HOST", raising=False)
    settings = Settings()
    assert settings.bind_host == "127.0.0.1"
    assert settings.cors_origins == [] and settings.read_tokens == []
