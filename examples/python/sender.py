"""A chat platform talking to casebridge through a client generated from its
OpenAPI document (docs/openapi.json) with openapi-python-client.

It creates an org (operator token), connects it to Creatio (Test & Save),
sets its delivery URL to the receiver in receiver.py, sends a conversation's
events, reads the conversation back, waits for the signed `case.linked`
delivery and checks its signature, and lists the deliveries. Every request
and answer goes through the generated, typed models. It exits 1, saying
which step failed, when anything is not as expected.

    python sender.py            # with the variables `casebridge demo --write-env` writes
"""

import datetime
import os
import queue
import sys
import time
import uuid

from casebridge_client import AuthenticatedClient
from casebridge_client.api.connection import test_and_save_connection
from casebridge_client.api.orgs import create_org
from casebridge_client.api.sync import get_conversation, ingest_events
from casebridge_client.api.two_way import list_deliveries, put_delivery_endpoint
from casebridge_client.models import (
    ConnectionBody,
    ConversationOut,
    CreatedOrg,
    DeliveriesOut,
    EndpointOut,
    EventContact,
    EventConversation,
    EventMessage,
    IngestedOut,
    MessageCreatedEvent,
    MessageCreatedType,
    NewOrg,
    PutDelivery,
    SavedOut,
)

import receiver


def expect(answer, kind, step):
    """The typed answer of `step`, or exit saying what came instead."""
    if not isinstance(answer, kind):
        sys.exit(f"[FAIL] {step}: expected {kind.__name__}, got {answer!r}")
    print(f"  [ok] {step}")
    return answer


def main():
    env = os.environ
    base = env["CASEBRIDGE_URL"]
    operator = AuthenticatedClient(base_url=base, token=env["CASEBRIDGE_OPERATOR_TOKEN"])

    created = expect(
        create_org.sync(client=operator, body=NewOrg(name="Python example")),
        CreatedOrg,
        "create an org",
    )
    api = AuthenticatedClient(base_url=base, token=created.api_key.key)

    saved = expect(
        test_and_save_connection.sync(
            client=api,
            body=ConnectionBody(
                instance_url=env["CREATIO_URL"],
                client_id=env["CREATIO_CLIENT_ID"],
                client_secret=env["CREATIO_CLIENT_SECRET"],
            ),
        ),
        SavedOut,
        "Test & Save against Creatio",
    )
    assert saved.report.ok, saved.report

    deliveries = queue.Queue()
    endpoint = expect(
        put_delivery_endpoint.sync(client=api, body=PutDelivery(url="http://127.0.0.1:9/")),
        EndpointOut,
        "set a delivery URL (to learn the signing secret)",
    )
    server = receiver.serve(endpoint.secret, 0, lambda payload, headers: deliveries.put(payload))
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/casebridge"
    expect(
        put_delivery_endpoint.sync(client=api, body=PutDelivery(url=url)),
        EndpointOut,
        "point deliveries at the receiver",
    )

    conversation = f"py-{uuid.uuid4().hex[:8]}"
    contact = EventContact(name="Ada Lovelace", email="ada@example.com")
    events = [
        MessageCreatedEvent(
            id=f"{conversation}-e{n}",
            type_=MessageCreatedType.MESSAGE_CREATED,
            occurred_at=datetime.datetime(2026, 12, 1, 10, n, tzinfo=datetime.timezone.utc),
            conversation=EventConversation(id=conversation, channel="web", contact=contact),
            message=EventMessage(id=f"{conversation}-m{n}", role=role, text=text),
        )
        for n, (role, text) in enumerate(
            [("customer", "My printer is on fire."), ("ai", "Please unplug it first.")]
        )
    ]
    ingested = expect(ingest_events.sync(client=api, body=events), IngestedOut, "send two events")
    assert ingested.accepted == 2, ingested

    for _ in range(100):
        read = get_conversation.sync(conversation, client=api)
        if isinstance(read, ConversationOut) and read.messages.written == 2 and not read.jobs.additional_properties.get("open"):
            break
        time.sleep(0.1)
    read = expect(read, ConversationOut, "read the conversation back")
    assert read.case.number and read.messages.written == 2, read
    print(f"       case {read.case.number}, state {read.state.value}, {read.messages.written} messages in Creatio")

    try:
        payload = deliveries.get(timeout=30)
    except queue.Empty:
        sys.exit("[FAIL] no delivery reached the receiver within 30 s")
    assert payload["type"] == "case.linked", payload
    assert payload["data"]["case_number"] == read.case.number, payload
    print(f"  [ok] the receiver verified a signed {payload['type']} delivery")

    listed = expect(list_deliveries.sync(client=api), DeliveriesOut, "list the deliveries")
    assert any(d.type_ == "case.linked" and d.state == "delivered" for d in listed.deliveries), listed
    server.shutdown()
    print("Every step passed.")


if __name__ == "__main__":
    main()
