"""medcloak.readers: the blinded expert-reader study (items, web app, answers, export).

- :func:`write_reader_items` writes the blinded images and ``items.csv`` (the study calls it);
- :func:`create_app` is the FastAPI app ``medcloak readers serve`` runs;
- :func:`export_answers` writes ``answers.csv``, ``summary.json`` and ``summary.csv``.

The web app needs the optional packages ``fastapi`` and ``uvicorn``; importing this package
does not.
"""

from medcloak.readers.export import cohen_kappa, export_answers, fleiss_kappa, summarise
from medcloak.readers.items import Item, read_reader_items, readers_dir, write_reader_items

__all__ = [
    "Item",
    "write_reader_items",
    "read_reader_items",
    "readers_dir",
    "export_answers",
    "summarise",
    "fleiss_kappa",
    "cohen_kappa",
    "create_app",
]


def __getattr__(name: str):
    if name == "create_app":  # lazy: fastapi is only needed to serve
        from medcloak.readers.app import create_app

        return create_app
    raise AttributeError(f"module 'medcloak.readers' has no attribute {name!r}")
