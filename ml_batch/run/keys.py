"""Entity keys as text: the one key-to-text rule.

GX reads failing rows' keys through psycopg2, the scoring extract reads them through ADBC (Arrow), shadow
predictions store them as text, and only their text forms agree for every key type (integers, numeric,
text, uuid, dates): the text PostgreSQL prints. Quarantine, the check that every failing row was seen by the
extract, and the labels' join on shadow predictions all compare keys by this text.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ml_batch.jsonvalues import python_value

if TYPE_CHECKING:  # imported where used: a plan or publish task never loads pyarrow
    import pyarrow as pa


def key_text(value: Any) -> str:
    """A key from psycopg2 (int, str, Decimal, uuid as str, date) as PostgreSQL prints it."""
    return str(python_value(value))


def key_texts(keys: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """Keys from ADBC as PostgreSQL prints them (`key_text` of the same keys from psycopg2); null stays None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = keys.type.storage_type if isinstance(keys.type, pa.ExtensionType) else keys.type
    if pa.types.is_fixed_size_binary(kind) and kind.byte_width == 16:  # uuid
        values = (keys.storage if isinstance(keys, pa.ExtensionArray) else keys).to_pylist()
        return [None if value is None else str(uuid.UUID(bytes=value)) for value in values]
    try:
        return [None if text is None else str(text) for text in pc.cast(keys, pa.string()).to_pylist()]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return [None if value is None else key_text(value) for value in keys.to_pylist()]
