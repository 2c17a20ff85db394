"""Durable state: the only package that imports tinydb."""
from appliance.state.index import FieldIndex
from appliance.state.repository import Repository, from_doc, to_doc
from appliance.state.store import Delete, Put, Query, Store

__all__ = ["FieldIndex", "Store", "Repository", "Put", "Delete", "Query", "to_doc", "from_doc"]
