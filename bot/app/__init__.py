"""Assembly and entry points: the Application, the web listener, the command line, the demo."""
