from heimdall.cli.main import app

# Guarded: a process spawned from one started with ``python -m heimdall`` (the lag
# process of ``localization.pools``) imports this module again, and must not run the CLI.
if __name__ == "__main__":
    app(prog_name="heimdall")
