"""The riffusion server: the inference API, the jam WebSocket and the web app (see docs/api.md)."""
