"""SOQL errors, laid out exactly like Salesforce's so clients that parse or log them see the real thing.

Salesforce reports a bad query as HTTP 400 with a JSON array `[{"message": ..., "errorCode": ...}]`
whose message repeats the offending query line, puts a caret under the offending token and names the
1-based row and column (salesforce-api.md §3). Every failure of the engine, whatever its cause, surfaces
as `SoqlError` so the server can always answer with that shape instead of a 500.
"""

from __future__ import annotations


class SoqlError(Exception):
    """A query Salesforce would refuse: `error_code` (e.g. MALFORMED_QUERY), `message`, HTTP `status`."""

    def __init__(self, error_code: str, message: str, status: int = 400):
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status

    def to_json(self) -> list[dict[str, str]]:
        """The REST error body."""
        return [{"message": self.message, "errorCode": self.error_code}]

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}"


def layout(text: str, line: int, column: int, description: str) -> str:
    """`\\n<query line>\\n<spaces>^\\nERROR at Row:<r>:Column:<c>\\n<description>` for a 1-based position."""
    lines = text.split("\n") or [""]
    line = max(1, min(line, len(lines)))
    column = max(1, column)
    return f"\n{lines[line - 1]}\n{' ' * (column - 1)}^\nERROR at Row:{line}:Column:{column}\n{description}"


def positioned(code: str, text: str, line: int, column: int, description: str) -> SoqlError:
    """A SoqlError whose message points at (line, column) of the query text."""
    return SoqlError(code, layout(text, line, column, description))


def malformed(text: str, line: int, column: int, token_text: str) -> SoqlError:
    return positioned("MALFORMED_QUERY", text, line, column, f"unexpected token: '{token_text}'")


def invalid_field(text: str, line: int, column: int, field: str, entity: str) -> SoqlError:
    return positioned(
        "INVALID_FIELD", text, line, column,
        f"No such column '{field}' on entity '{entity}'. If you are attempting to use a custom field, be sure "
        "to append the '__c' after the custom field name. Please reference your WSDL or the describe call "
        "for the appropriate names.",
    )


def invalid_relationship(text: str, line: int, column: int, rel: str) -> SoqlError:
    return positioned(
        "INVALID_FIELD", text, line, column,
        f"Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom "
        "relationship, be sure to append the '__r' after the custom relationship name. Please reference your "
        "WSDL or the describe call for the appropriate names.",
    )


def invalid_type(text: str, line: int, column: int, name: str) -> SoqlError:
    return positioned(
        "INVALID_TYPE", text, line, column,
        f"sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to "
        "append the '__c' after the entity name. Please reference your WSDL or the describe call for the "
        "appropriate names.",
    )
