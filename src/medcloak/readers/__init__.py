"""medcloak.readers: the blinded expert-reader study (items, web app, answers, export).

- :func:`write_reader_items` writes the blinded images and ``items.csv`` (the study calls it);
- :func:`create_app` is the FastAPI app ``medcloak readers serve`` runs;
- :func:`export_answers` writes ``answers.csv``, ``summary.json`` and ``summary.csv``.
"""

from medcloak.readers.app import create_app
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

