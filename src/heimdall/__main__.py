from heimdall.cli.main import app

# Guarded: a multiprocessing child of a process started with ``python -m heimdall``
# imports this module again, and must not run the CLI.
if __name__ == "__main__":
    app(prog_name="heimdall")
