"""Run the viewer app with uvicorn."""

from __future__ import annotations

from pipelines.serve.app import create_app


def serve(out: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the viewer for the finished map output ``out`` until interrupted.

    The output is checked before the server starts, so a wrong ``out`` fails at once.
    """
    import uvicorn

    app = create_app(out)
    base = f"http://{host}:{port}"
    print(f"lsmap viewer for {out}: {base}/")
    for layer in app.state.layers:
        print(f"  WMTS ({layer['label']}): {base}/{layer['id']}/WMTSCapabilities.xml")
    print("Press Ctrl+C to stop.", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
