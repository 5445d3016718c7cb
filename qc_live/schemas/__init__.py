"""The shapes of the REST API and the socket events, each declared once.

Every request body and query string is a pydantic model (requests.py). The
routes parse requests into them (`api.api`), the socket handlers and the CSV
import use the same ones, and the OpenAPI document is generated from them
(openapi.py), with the answers' models (answers.py, for the document only).

The contract's split of errors: type errors (a string where a number
belongs, a missing field, an unknown one) are 400; values of the right type
that make no sense (priority 10**9, outcome "maybe") are 422. base.py turns
pydantic's errors into the contract's codes; fields.py holds the field types
and their rules. Every type is strict: true is not 1 and "5" is not 5 in
JSON. Unknown fields are refused so typos do not pass silently. In a body,
null stands for an absent field, except in PATCH bodies (`base.Changes`),
where it is refused unless it means something.
"""
