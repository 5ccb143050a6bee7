"""How a batch of viewer input is put to the character.

Viewer text is quoted after a bracketed label, so the character knows who is
talking and that it is live chat, and the text can never start a command.
"""

from __future__ import annotations

from ..engine.events import ViewerEvent
from .queue import Batch

_CURRENCY = {"bilibili": "CNY"}


def prompt_for(batch: Batch) -> str:
    events = batch.events
    match batch.kind:
        case "paid_message":
            return _paid_message(events[0])
        case "gifts":
            return "[Gifts] " + "; ".join(_gift(e) for e in events) + "."
        case "welcome":
            return "[Live room] Just joined: " + ", ".join(e.viewer_name for e in events) + "."
        case _:
            if len(events) == 1:
                return f'[Live chat] Viewer "{events[0].viewer_name}" says: {events[0].text}'
            return "[Live chat] Viewers say:\n" + "\n".join(f"- {e.viewer_name}: {e.text}" for e in events)


def _money(event: ViewerEvent) -> str:
    amount = f"{event.value:g}"
    unit = _CURRENCY.get(event.platform)
    return f"{amount} {unit}" if unit else amount


def _paid_message(event: ViewerEvent) -> str:
    if event.kind == "guard":
        what = f"{event.count} × {event.gift_name}" if event.gift_name else "a membership"
        return f'[Membership, {_money(event)}] Viewer "{event.viewer_name}" bought {what}.'
    label = f"[Super chat, {_money(event)}]" if event.kind == "superchat" else f"[Paid, {_money(event)}]"
    said = f" says: {event.text}" if event.text else " sent a super chat."
    return f'{label} Viewer "{event.viewer_name}"{said}'


def _gift(event: ViewerEvent) -> str:
    gift = event.gift_name or "a gift"
    paid = f" ({_money(event)})" if event.paid else ""
    return f"{event.viewer_name} sent {event.count} × {gift}{paid}"
