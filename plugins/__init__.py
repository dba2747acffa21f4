"""Built-in plugins, installed as ``jacdistill.plugins`` and registered through entry points."""
