"""The room's viewer queue: priorities, merging, drops, bounds; and the prompt wording."""

from live.engine.events import ViewerEvent
from live.rooms.prompt import prompt_for
from live.rooms.queue import Dropped, QueuePolicy, RoomQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def chat(name: str, text: str, uid: str | None = None) -> ViewerEvent:
    return ViewerEvent("danmaku", name, uid or name, text=text, platform="test")


def superchat(name: str, text: str, value: float) -> ViewerEvent:
    return ViewerEvent("superchat", name, name, text=text, value=value, platform="bilibili")


def gift(name: str, gift_name: str, value: float, count: int = 1) -> ViewerEvent:
    return ViewerEvent("gift", name, name, gift_name=gift_name, value=value, count=count, platform="bilibili")


def drain(queue: RoomQueue) -> list:
    batches = []
    while (batch := queue.take()) is not None:
        batches.append(batch)
    return batches


def test_a_burst_of_fifty_danmaku_becomes_a_bounded_number_of_turns_paid_first():
    clock = Clock()
    queue = RoomQueue(QueuePolicy(capacity=30, merge_max=5), clock)
    for i in range(50):
        queue.offer(chat(f"viewer{i}", f"message number {i}"))
        if i == 25:
            queue.offer(superchat("Rich", "good luck today", 30))
            queue.offer(gift("Kind", "Rocket", 100))
    batches = drain(queue)
    assert [b.kind for b in batches[:2]] == ["paid_message", "gifts"]
    chat_batches = batches[2:]
    assert all(b.kind == "chat" and 1 <= len(b.events) <= 5 for b in chat_batches)
    assert len(chat_batches) <= 6  # at most 30 queued lines, 5 per turn
    lines = [e.text for b in chat_batches for e in b.events]
    assert lines[-1] == "message number 49"  # when full, the oldest lines made way for fresh ones
    assert queue.dropped["queue_full"] == 22  # 52 offered, 30 kept (2 of them paid)


def test_paid_messages_are_answered_one_at_a_time_most_valuable_first():
    queue = RoomQueue(QueuePolicy(), Clock())
    queue.offer(superchat("A", "small one", 5))
    queue.offer(superchat("B", "big one", 500))
    queue.offer(ViewerEvent("guard", "C", "c", gift_name="Captain", value=198, platform="bilibili"))
    assert [[e.viewer_name for e in b.events] for b in drain(queue)] == [["B"], ["C"], ["A"]]


def test_duplicates_and_per_viewer_rate_are_dropped_but_paid_input_never_is():
    clock = Clock()
    queue = RoomQueue(QueuePolicy(viewer_interval_s=3), clock)
    assert queue.offer(chat("A", "666")) is None
    assert queue.offer(chat("B", " 666 ")) == "duplicate"  # whitespace and case do not make it new
    assert queue.offer(chat("A", "another line")) == "rate_limited"
    clock.now += 3.5
    assert queue.offer(chat("A", "another line")) is None
    assert queue.offer(superchat("A", "paid, right after", 30)) is None
    assert queue.offer(superchat("A", "paid, right after", 30)) is None
    assert len(queue) == 4


def test_a_line_just_answered_is_still_a_duplicate():
    clock = Clock()
    queue = RoomQueue(QueuePolicy(), clock)
    queue.offer(chat("A", "hello"))
    assert queue.take() is not None
    clock.now += 5
    assert queue.offer(chat("B", "HELLO")) == "duplicate"


def test_stale_chat_is_dropped_when_its_turn_comes_paid_is_kept():
    clock = Clock()
    queue = RoomQueue(QueuePolicy(max_age_s=60), clock)
    queue.offer(chat("A", "old question"))
    queue.offer(superchat("B", "old but paid", 10))
    clock.now += 61
    queue.offer(chat("C", "fresh question"))
    batches = drain(queue)
    assert [[e.text for e in b.events] for b in batches] == [["old but paid"], ["fresh question"]]
    assert queue.dropped["stale"] == 1


def test_a_full_queue_makes_room_for_paid_input_by_dropping_unpaid():
    queue = RoomQueue(QueuePolicy(capacity=3, viewer_interval_s=0), Clock())
    for i in range(3):
        queue.offer(chat(f"v{i}", f"line {i}"))
    assert queue.offer(superchat("Rich", "me first", 50)) is None
    assert len(queue) == 3
    assert queue.take().events[0].viewer_name == "Rich"
    assert [e.text for e in queue.take().events] == ["line 1", "line 2"]


def test_every_drop_is_reported_with_its_sender_also_items_pushed_out_or_stale_after_they_were_taken_in():
    """Found by a tester: a full queue pushed out accepted lines and nobody was told."""
    clock = Clock()
    told: list[Dropped] = []
    queue = RoomQueue(QueuePolicy(capacity=3, viewer_interval_s=0, max_age_s=60), clock, on_dropped=told.append)
    for i in range(3):
        assert queue.offer(chat(f"v{i}", f"line {i}"), sender=f"bridge-{i}") is None
    assert told == []
    assert queue.offer(chat("v3", "line 3"), sender="http-3") is None  # taken in; the oldest line makes way
    assert queue.offer(chat("v4", "line 1"), sender="http-4") == "duplicate"  # refused on arrival
    assert [(d.event.text, d.reason, d.sender, d.queued) for d in told] == [
        ("line 0", "queue_full", "bridge-0", True),
        ("line 1", "duplicate", "http-4", False),
    ]
    told.clear()
    clock.now += 61
    assert queue.offer(chat("v5", "line 5"), sender="bridge-5") is None  # full of lines now stale: one makes way
    assert queue.take().events[0].text == "line 5"
    assert sorted((d.event.text, d.reason, d.queued) for d in told) == [
        ("line 1", "queue_full", True),
        ("line 2", "stale", True),
        ("line 3", "stale", True),
    ]
    assert queue.dropped == {"queue_full": 2, "duplicate": 1, "stale": 2}


def test_a_queue_full_of_paid_input_refuses_more_and_says_so():
    told: list[Dropped] = []
    queue = RoomQueue(QueuePolicy(capacity=2), Clock(), on_dropped=told.append)
    queue.offer(superchat("A", "one", 30), sender="a")
    queue.offer(superchat("B", "two", 30), sender="b")
    assert queue.offer(chat("C", "a plain line"), sender="c") == "queue_full"
    assert [(d.sender, d.reason, d.queued) for d in told] == [("c", "queue_full", False)]


def test_entries_and_free_gifts_are_ignored_unless_enabled():
    queue = RoomQueue(QueuePolicy(), Clock())
    assert queue.offer(ViewerEvent("entry", "A", "a")) == "ignored"
    assert queue.offer(gift("B", "Flower", 0)) == "ignored"
    greeter = RoomQueue(QueuePolicy(greet_entries=True, thank_free_gifts=True), Clock())
    assert greeter.offer(ViewerEvent("entry", "A", "a")) is None
    assert greeter.offer(chat("C", "hi")) is None
    assert [b.kind for b in drain(greeter)] == ["chat", "welcome"]


def test_viewer_text_is_one_bounded_line_and_names_cannot_break_the_quote():
    queue = RoomQueue(QueuePolicy(max_text_chars=20), Clock())
    queue.offer(ViewerEvent("danmaku", 'Mal"lory\nX' * 10, "m", text="line one\nline two\x00 and a very long tail"))
    event = queue.take().events[0]
    assert "\n" not in event.text and "\x00" not in event.text and len(event.text) <= 20
    assert event.text.endswith("…")
    assert '"' not in event.viewer_name and len(event.viewer_name) <= 32


def test_prompts_name_the_viewers_and_never_start_with_a_command():
    queue = RoomQueue(QueuePolicy(viewer_interval_s=0), Clock())
    queue.offer(chat("Mika", "/reset everything"))
    single = prompt_for(queue.take())
    assert single == '[Live chat] Viewer "Mika" says: /reset everything'
    queue.offer(chat("Mika", "hello!"))
    queue.offer(chat("Ren", "sing something"))
    assert prompt_for(queue.take()) == "[Live chat] Viewers say:\n- Mika: hello!\n- Ren: sing something"
    queue.offer(superchat("Rich", "good luck", 30))
    assert prompt_for(queue.take()) == '[Super chat, 30 CNY] Viewer "Rich" says: good luck'
    queue.offer(gift("Kind", "Rocket", 100, count=2))
    queue.offer(gift("Ren", "Heart", 1))
    assert prompt_for(queue.take()) == "[Gifts] Kind sent 2 × Rocket (100 CNY); Ren sent 1 × Heart (1 CNY)."
