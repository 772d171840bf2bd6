from heimdall.cli.main import app

app(prog_name="heimdall")
