"""Tracking-number recognition against the shipped jkeen/tracking_number_data examples.

Expected results are read from the courier JSON files, never listed here, so the tests follow
the data when it is updated.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from dashboard import tracking
from dashboard.tracking import (
    ServiceDefinition,
    TrackingMatch,
    dhl_express_number,
    dpd_number,
    identify,
    identify_one,
    load_definitions,
    match_service,
    ups_number,
)

MIN_RECOGNITION_RATE = 0.95


def _compact(value: str) -> str:
    return "".join(value.split()).upper()


def _courier_files() -> list[Path]:
    folder = tracking.data_folder()
    return sorted(folder.glob("*.json"))


def _examples(kind: str) -> list[tuple[ServiceDefinition, str]]:
    pairs = []
    for definition in load_definitions():
        numbers = definition.valid_examples if kind == "valid" else definition.invalid_examples
        pairs.extend((definition, number) for number in numbers)
    return pairs


def _by_id(service_id: str) -> ServiceDefinition:
    return next(d for d in load_definitions() if d.service_id == service_id)


# --------------------------------------------------------------------------- the data


def test_every_entry_of_every_courier_file_is_loaded_and_compiles() -> None:
    files = _courier_files()
    assert files, "courier JSON files missing"
    entries = [
        (courier["courier_code"], entry["name"])
        for courier in (json.loads(path.read_text(encoding="utf-8")) for path in files)
        for entry in courier["tracking_numbers"]
    ]
    loaded = [(d.courier_code, d.service) for d in load_definitions()]
    assert sorted(loaded) == sorted(entries)
    # ids must be unique: callers and the ranking's tie-break rely on them.
    assert len({d.service_id for d in load_definitions()}) == len(entries)


def test_every_checksum_the_data_names_is_implemented() -> None:
    names = {d.checksum["name"] for d in load_definitions() if d.checksum}
    assert names <= set(tracking.CHECKSUMS), names - set(tracking.CHECKSUMS)


def test_load_definitions_is_cached() -> None:
    assert load_definitions()[0] is load_definitions()[0]


# --------------------------------------------------------------------------- valid examples


def test_valid_examples_are_valid_for_their_own_service() -> None:
    # The gem's own data test: klass.new(valid_number).valid? for the service that lists it.
    failures = [
        (d.service_id, number)
        for d, number in _examples("valid")
        if not (m := match_service(d, number)) or not m.valid or m.courier_code != d.courier_code
    ]
    assert not failures, failures


def test_valid_examples_are_identified_with_the_right_courier() -> None:
    examples = _examples("valid")
    misses = []
    for definition, number in examples:
        best = identify_one(number)
        if best is None or best.courier_code != definition.courier_code:
            others = [(m.courier_code, m.service_id) for m in identify(number)]
            misses.append((definition.service_id, number, best and best.service_id, others))
    for miss in misses:
        print("not identified as its courier (expected, number, best, all valid):", miss)
    rate = 1 - len(misses) / len(examples)
    print(f"recognised {len(examples) - len(misses)}/{len(examples)} = {rate:.1%}")
    assert rate >= MIN_RECOGNITION_RATE, misses


def test_the_right_service_is_always_among_the_candidates() -> None:
    # Where two couriers' numbers overlap (a 12 digit number can pass both FedEx and Purolator
    # check digits), the listing must still offer the right one.
    missing = [
        (d.service_id, number)
        for d, number in _examples("valid")
        if d.service_id not in {m.service_id for m in identify(number)}
    ]
    assert not missing, missing


def test_matches_are_normalised_and_deterministic() -> None:
    for definition, number in _examples("valid"):
        first, second = identify(number), identify(number)
        assert first == second
        assert all(m.valid and m.tracking_number == _compact(number) for m in first)
        assert all(isinstance(m, TrackingMatch) for m in first)


@pytest.mark.parametrize(
    "variant",
    [
        lambda n: " ".join(_compact(n)),  # every character spaced, as the gem's tests do
        lambda n: "  ".join(_compact(n)),
        lambda n: _compact(n)[: len(_compact(n)) // 2] + "\t " + _compact(n)[len(_compact(n)) // 2 :],
        lambda n: f"  {_compact(n).lower()}\n",
    ],
    ids=["spaced", "double-spaced", "split", "lower-case"],
)
def test_spacing_and_case_do_not_matter(variant) -> None:
    for definition, number in _examples("valid"):
        assert identify(variant(number)) == identify(number), (definition.service_id, number)


def test_only_the_whole_input_is_matched_not_a_substring() -> None:
    for definition, number in _examples("valid"):
        ids = {m.service_id for m in identify(f"tracking {number} please")}
        assert definition.service_id not in ids, number
        assert not identify(f"{number}/{number}")


def test_empty_and_overlong_input() -> None:
    assert identify("") == [] and identify("   ") == []
    assert identify_one("not a tracking number") is None
    assert identify("1" * 5000) == []


# --------------------------------------------------------------------------- invalid examples
# Rule, mirroring the gem's test/tracking_number_data_test.rb: an `invalid` example is checked
# only against the service that lists it (`klass.new(invalid_number).valid?` is false). It may
# legitimately be a valid number of another service: Amazon lists "000000000000" as invalid,
# and it is a valid FedEx Express (12) number.


def test_invalid_examples_are_not_valid_for_their_own_service() -> None:
    accepted = [
        (d.service_id, number)
        for d, number in _examples("invalid")
        if (m := match_service(d, number)) is not None and m.valid
    ]
    for entry in accepted:
        print("invalid example accepted:", entry)
    assert not accepted, accepted


def test_invalid_examples_are_never_identified_as_their_own_service() -> None:
    for definition, number in _examples("invalid"):
        assert definition.service_id not in {m.service_id for m in identify(number)}, number


def test_exactly_one_check_character_makes_a_valid_example_valid() -> None:
    # Changing the check digit must break the checksum; also pins each algorithm to the data.
    for definition, number in _examples("valid"):
        if not definition.checksum:
            continue
        compact = _compact(number)
        found = definition.pattern.fullmatch(compact)
        start, end = found.span("CheckDigit")
        alphabet = definition.checksum.get("alphabet") or "0123456789"
        passing = [
            c for c in alphabet
            if (m := match_service(definition, compact[:start] + c + compact[end:])) and m.valid
        ]
        assert passing == [compact[start:end]], (definition.service_id, number, passing)


# --------------------------------------------------------------------------- tracking_url


def test_tracking_url_is_the_template_with_the_quoted_number() -> None:
    for definition, number in _examples("valid"):
        match = match_service(definition, number)
        if definition.tracking_url is None:
            assert match.tracking_url is None
            continue
        expected = definition.tracking_url.replace("%s", quote(_compact(number), safe=""))
        assert match.tracking_url == expected
        assert "%s" not in match.tracking_url and " " not in match.tracking_url


def test_tracking_url_quotes_the_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    courier = {
        "name": "Test Courier",
        "courier_code": "test",
        "tracking_numbers": [{
            "name": "Test", "id": "test", "regex": "\\s*(?<SerialNumber>T\\s*[0-9]+[/&]?)",
            "validation": {}, "tracking_url": "https://example.test/t?n=%s&x=%s",
            "test_numbers": {"valid": ["T123&"], "invalid": []},
        }],
    }
    (tmp_path / "test.json").write_text(json.dumps(courier), encoding="utf-8")
    monkeypatch.setenv(tracking.DATA_ENV_VAR, str(tmp_path))
    match = identify_one("t 12 3&")
    assert match == TrackingMatch(
        courier="Test Courier", courier_code="test", service="Test", service_id="test",
        valid=True, tracking_number="T123&", tracking_url="https://example.test/t?n=T123%26&x=%s",
    )


def test_data_folder_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tracking.DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError):
        identify("1Z5R89390357567127")


# --------------------------------------------------------------------------- generators


@pytest.mark.parametrize("serial", [0, 1, 6, 7, 331881002, 999_999_999, 123_456_789])
def test_dhl_express_numbers_are_recognised(serial: int) -> None:
    number = dhl_express_number(serial)
    assert len(number) == 10 and number.isdigit()
    best = identify_one(number)
    assert (best.courier_code, best.service_id, best.valid) == ("dhl", "dhl_express", True)


@pytest.mark.parametrize(
    ("shipper", "service", "package"),
    [("5R8939", "03", 5756712), ("xx3150", "yw", 4407002), ("000000", "01", 0), ("ZZZZZZ", "A8", 9_999_999)],
)
def test_ups_numbers_are_recognised(shipper: str, service: str, package: int) -> None:
    number = ups_number(shipper, service, package)
    assert len(number) == 18 and number.startswith("1Z" + shipper.upper() + service.upper())
    best = identify_one(number)
    assert (best.courier_code, best.service_id, best.valid) == ("ups", "ups", True)


@pytest.mark.parametrize("parcel", [0, 1, 9980000020033, 5_555_555_555_555, 99_999_999_999_999])
def test_dpd_numbers_are_recognised(parcel: int) -> None:
    short = dpd_number(parcel)
    long = dpd_number(parcel, barcode=True, destination_zip="0081827", service="350", country="276")
    assert len(short) == 15 and len(long) == 28 and long[7:21] == short[:14]
    # A 15 digit DPD number can also pass a FedEx Ground check digit, so DPD must be among
    # the valid matches rather than necessarily first.
    assert "dpd_14" in {m.service_id for m in identify(short) if m.courier_code == "dpd"}
    assert "dpd" in {m.service_id for m in identify(long) if m.courier_code == "dpd"}


def test_generators_reproduce_the_data_examples() -> None:
    # The data's own valid numbers, rebuilt from their parts, prove the check digits agree.
    for number in map(_compact, _by_id("dhl_express").valid_examples):
        if len(number) == 10:
            assert dhl_express_number(int(number[:9])) == number
    for number in map(_compact, _by_id("ups").valid_examples):
        assert ups_number(number[2:8], number[8:10], int(number[10:17])) == number
    for number in map(_compact, _by_id("dpd_14").valid_examples):
        assert dpd_number(int(number[:14])) == number
    for number in map(_compact, _by_id("dpd").valid_examples):
        rebuilt = dpd_number(int(number[7:21]), barcode=True, destination_zip=number[:7],
                             service=number[21:24], country=number[24:27])
        assert rebuilt == number


@pytest.mark.parametrize(
    "call",
    [
        lambda: dhl_express_number(-1),
        lambda: dhl_express_number(10**9),
        lambda: ups_number("12345", "03", 1),
        lambda: ups_number("123456", "0", 1),
        lambda: ups_number("123456", "03", 10**7),
        lambda: dpd_number(10**14),
        lambda: dpd_number(1, barcode=True, service="35"),
    ],
)
def test_generators_refuse_bad_parts(call) -> None:
    with pytest.raises(ValueError):
        call()


# --------------------------------------------------------------------------- ranking helper


@pytest.mark.parametrize(
    ("source", "expected"),
    [("ABC", 3), ("A(?:BC)?D+", 2), ("(?:GM|LX|R)\\s*[0-9]{4}", 1), ("(?=99)[0-9]{2}", 0), ("(?P<X>7\\s*){3}", 3)],
)
def test_fixed_characters(source: str, expected: int) -> None:
    assert tracking.fixed_characters(source) == expected
