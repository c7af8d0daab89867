"""The web app's pieces (HTML rendering, login, evaluation report view, upload checks), imported by app.py only."""
