"""The HTTP service: ``reviewlens serve`` answers predictions from trained runs, without TensorFlow.

``create_app(ServeConfig(run_dirs=[...]))`` builds the FastAPI app; ``serve(config)`` runs it under uvicorn.
"""

from reviewlens.serving.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from reviewlens.serving.app import create_app

        return create_app
    if name == "serve":
        from reviewlens.serving.server import serve

        return serve
    raise AttributeError(f"module 'reviewlens.serving' has no attribute {name!r}")
