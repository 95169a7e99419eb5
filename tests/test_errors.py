"""The helpers behind one-line errors."""

from gankit.errors import did_you_mean, first_line


def test_did_you_mean_names_the_closest_choice_or_nothing():
    assert did_you_mean("hinje", ["hinge", "wgan"]) == "did you mean hinge? "
    assert did_you_mean("stpes", ["steps"], prefix="train.") == "did you mean train.steps? "
    assert did_you_mean("zzz", ["hinge", "wgan"]) == ""


def test_first_line_quotes_a_multi_line_message_in_one_line():
    assert first_line(RuntimeError("size mismatch\n  at layer 3\n")) == "size mismatch"
    assert first_line(ValueError("x" * 300), limit=10) == "x" * 10
    assert first_line(KeyError()) == "KeyError"
