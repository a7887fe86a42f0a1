import pytest

from dashboard.references import InvalidValue, _fold, _keeps, clean_value, highlight_span, matching_key


@pytest.mark.parametrize(
    "value",
    ["PO-123/45", "po 12345", "po\u00a012345", "po\u200b12345", "ＰＯ１２３４５", "PO.123#45", " p\u2013o\u2011123\u00ad45 "],
)
def test_every_spelling_has_one_key(value):
    assert matching_key(value) == "po12345"


def test_case_folds_outside_ascii():
    assert matching_key("ÄR-12") == matching_key("är-12") == "är12"
    assert matching_key("STRASSE") == matching_key("Straße")


def test_key_keeps_letters_and_digits_of_any_script():
    assert matching_key("Заказ-77") == "заказ77"


def test_highlight_maps_key_back_to_value_as_entered():
    value = "PO-123/45"
    start, end = highlight_span(value, 2, 3)
    assert value[start:end] == "123"


def test_clean_value_counts_characters_not_bytes():
    assert clean_value("é" * 255) == "é" * 255
    with pytest.raises(InvalidValue):
        clean_value("é" * 256)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "a\u2028b", "a\tb"])
def test_clean_value_refuses_line_breaks_and_control_characters(bad):
    with pytest.raises(InvalidValue):
        clean_value(bad)


def test_clean_value_trims_and_refuses_blank():
    assert clean_value("  PO 1  ") == "PO 1"
    with pytest.raises(InvalidValue):
        clean_value("   ")
    assert clean_value("  ", allow_empty=True) == ""


def test_ascii_fast_path_gives_the_unicode_key():
    # matching_key skips NFKC and case folding for ASCII; every ASCII character must fold as they would.
    def unicode_key(value: str) -> str:
        return "".join(char for char in _fold(value) if _keeps(char))

    for code in range(128):
        value = f"x{chr(code)}Y-{chr(code)}9"
        assert matching_key(value) == unicode_key(value), repr(chr(code))


@pytest.mark.parametrize("raw", ["\ufeffSO-127", "SO-127\u200b", "\u2060 SO-127 \ufeff", " \u200b\u00a0SO-127\u200d "])
def test_clean_value_trims_invisible_format_characters_at_the_edges(raw):
    assert clean_value(raw) == "SO-127"


def test_clean_value_keeps_invisible_characters_inside_a_value():
    assert clean_value("\ufeffSO\u200b127\u2060") == "SO\u200b127"


def test_a_value_of_invisible_characters_only_is_blank():
    with pytest.raises(InvalidValue, match="Enter a value"):
        clean_value("\ufeff\u200b \u2060")
    assert clean_value("\u200b", allow_empty=True) == ""


@pytest.mark.parametrize("raw", ["\u202eSO-127", "SO-127\u2066"])
def test_text_direction_controls_at_the_edges_are_refused_not_trimmed(raw):
    # Trimming one would save, silently, a value that read differently to whoever pasted it.
    with pytest.raises(InvalidValue, match="direction"):
        clean_value(raw)
