"""Recognise carrier tracking numbers from the jkeen/tracking_number_data courier files.

No Flask imports: the demo-data generator and command-line tools reuse it.

The JSON files are read at runtime (never copied into code) so that an updated dataset keeps
working. Validation follows the reference Ruby gem `tracking_number` (jkeen): the regex must
match the whole number (whitespace removed, upper-cased), then the check digit must pass, then
every `validation.additional.exists` lookup must find an entry.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = [
    "ServiceDefinition",
    "TrackingMatch",
    "check_digit_for",
    "compile_pattern",
    "dhl_express_number",
    "dpd_number",
    "fixed_characters",
    "identify",
    "identify_one",
    "load_definitions",
    "match_service",
    "matching_additional",
    "ups_number",
]

DATA_ENV_VAR = "DASHBOARD_TRACKING_DATA"
_REPO = Path(__file__).resolve().parent.parent
_DEFAULT_FOLDER = _REPO.parent / "shared" / "data" / "tracking_number_data" / "couriers"
_WHITESPACE = re.compile(r"\s+")
# The longest number in the data is 34 characters; anything far longer is a pasted text, not a
# number, and is refused before any regex runs.
MAX_LENGTH = 64
# Ruby/PCRE spell named groups `(?<Name>`; Python's `re` only knows `(?P<Name>`. The letter
# after `<` keeps lookbehinds `(?<=` and `(?<!` untouched.
_PCRE_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")


@dataclass(frozen=True)
class TrackingMatch:
    courier: str  # courier display name, e.g. "DHL"
    courier_code: str  # e.g. "dhl"
    service: str  # tracking_numbers[].name, e.g. "DHL Express"
    service_id: str  # tracking_numbers[].id (derived from the name where the data has none)
    valid: bool  # pattern matched AND checksum/additional validations pass
    tracking_number: str  # normalised: whitespace removed, upper-cased
    tracking_url: str | None  # tracking_url with %s replaced by the url-quoted number


@dataclass(frozen=True)
class ServiceDefinition:
    """One `tracking_numbers[]` entry of a courier file, with its regex compiled."""

    courier: str
    courier_code: str
    service: str
    service_id: str
    pattern: re.Pattern[str]
    validation: Mapping[str, Any]
    additional: tuple[Mapping[str, Any], ...]
    tracking_url: str | None
    valid_examples: tuple[str, ...]
    invalid_examples: tuple[str, ...]
    order: int  # load position: the last tie-break, so ranking never depends on dict/set order
    specificity: int = 0  # fixed_characters() of the regex, see _rank

    @property
    def checksum(self) -> Mapping[str, Any] | None:
        return self.validation.get("checksum") or None

    @property
    def required_lookups(self) -> tuple[str, ...]:
        additional = self.validation.get("additional") or {}
        return tuple(additional.get("exists") or ())


# --------------------------------------------------------------------------- loading


def data_folder() -> Path:
    configured = os.environ.get(DATA_ENV_VAR)
    return Path(configured) if configured else _DEFAULT_FOLDER


def load_definitions(folder: Path | None = None) -> list[ServiceDefinition]:
    """All services of all couriers in `folder`, in file-name then file order.

    Cached per folder; the env var is read on every call so tests can point elsewhere.
    """
    resolved = Path(folder) if folder is not None else data_folder()
    return list(_load_folder(str(resolved.resolve())))


@lru_cache(maxsize=8)
def _load_folder(folder: str) -> tuple[ServiceDefinition, ...]:
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no courier *.json files in {folder}")
    definitions: list[ServiceDefinition] = []
    for path in files:
        courier = json.loads(path.read_text(encoding="utf-8"))
        for entry in courier.get("tracking_numbers", []):
            definitions.append(_definition(courier, entry, order=len(definitions)))
    return tuple(definitions)


def _definition(courier: Mapping[str, Any], entry: Mapping[str, Any], order: int) -> ServiceDefinition:
    examples = entry.get("test_numbers") or {}
    pattern = compile_pattern(entry["regex"])
    return ServiceDefinition(
        courier=courier["name"],
        courier_code=courier["courier_code"],
        service=entry["name"],
        service_id=entry.get("id") or _service_id(courier["courier_code"], entry["name"]),
        pattern=pattern,
        validation=entry.get("validation") or {},
        additional=tuple(entry.get("additional") or ()),
        tracking_url=entry.get("tracking_url") or None,
        valid_examples=tuple(examples.get("valid") or ()),
        invalid_examples=tuple(examples.get("invalid") or ()),
        order=order,
        specificity=fixed_characters(pattern.pattern),
    )


def _service_id(courier_code: str, name: str) -> str:
    # A few entries (e.g. "UPS Waybill", both Old Dominion ones) carry no id; a slug of the
    # name is stable across loads and readable in logs.
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return slug if slug.startswith(courier_code) else f"{courier_code}_{slug}"


def compile_pattern(regex: str | Sequence[str]) -> re.Pattern[str]:
    """The data's regex (a string, or a list joined as the gem does) as a Python pattern."""
    source = regex if isinstance(regex, str) else "".join(regex)
    return re.compile(_PCRE_NAMED_GROUP.sub("(?P<", source))


# --------------------------------------------------------------------------- specificity
# When a number is valid for two services (11 digits pass both DHL Express mod 7 and Old
# Dominion Luhn), the pattern that demands more fixed characters ("780…") is the better guess.
# Counted on the regex source: the fewest literal letters/digits any match must contain.

_QUANTIFIER = re.compile(r"\{(\d+)(?:,\d*)?\}|[*+?]")


def fixed_characters(source: str) -> int:
    """The fewest literal letters and digits a match of `source` must contain."""
    count, _ = _alternatives(source, 0)
    return count


def _alternatives(source: str, pos: int) -> tuple[int, int]:
    """Min over `a|b|…` up to the closing parenthesis (or the end); returns (count, pos)."""
    best: int | None = None
    while True:
        count, pos = _sequence(source, pos)
        best = count if best is None else min(best, count)
        if pos < len(source) and source[pos] == "|":
            pos += 1
            continue
        return best, pos


def _sequence(source: str, pos: int) -> tuple[int, int]:
    total = 0
    while pos < len(source) and source[pos] not in "|)":
        count, pos = _atom(source, pos)
        quantifier = _QUANTIFIER.match(source, pos)
        if quantifier:
            pos = quantifier.end()
            # `?` and `*` may match nothing; `+` at least once; `{m,n}` at least m times.
            text = quantifier.group(0)
            count *= int(quantifier.group(1)) if quantifier.group(1) else (1 if text == "+" else 0)
            if source[pos:pos + 1] in ("?", "+"):  # lazy or possessive marker
                pos += 1
        total += count
    return total, pos


def _atom(source: str, pos: int) -> tuple[int, int]:
    char = source[pos]
    if char == "\\":  # \s, \b, \d …: classes and anchors, never a fixed character
        return 0, pos + 2
    if char == "[":
        end = source.index("]", pos + 2)  # a class may start with "]" literally
        return 0, end + 1
    if char == "(":
        lookaround = source.startswith(("(?=", "(?!", "(?<=", "(?<!"), pos)
        named = re.match(r"\(\?P?<[A-Za-z_]\w*>|\(\?:|\(\?[=!]|\(\?<[=!]|\(", source[pos:])
        count, pos = _alternatives(source, pos + named.end())
        return (0 if lookaround else count), pos + 1  # skip ")"
    return (1 if char.isalnum() else 0), pos + 1


# --------------------------------------------------------------------------- checksums
# Each mirrors ChecksumValidations in the Ruby gem, including its quirks (Ruby's `to_i`
# yields 0 for a non-digit, mod10 maps letters with (ord - 3) % 10 as UPS does).


def _ruby_int(text: str | None) -> int:
    """Ruby's String#to_i: the leading digits as a number, 0 when there are none."""
    digits = re.match(r"\d*", text or "").group(0)
    return int(digits) if digits else 0


def _mod10(serial: str, check: str, params: Mapping[str, Any]) -> bool:
    chars = serial[::-1] if params.get("reverse") else serial
    total = 0
    for index, char in enumerate(chars):
        value = int(char) if char.isdigit() else (ord(char) - 3) % 10
        if params.get("odds_multiplier") and index % 2 == 1:
            value *= int(params["odds_multiplier"])
        elif params.get("evens_multiplier") and index % 2 == 0:
            value *= int(params["evens_multiplier"])
        total += value
    return (10 - total % 10) % 10 == _ruby_int(check)


def _mod7(serial: str, check: str, params: Mapping[str, Any]) -> bool:
    return _ruby_int(serial) % int(params.get("modulo", 7)) == _ruby_int(check)


def _luhn(serial: str, check: str, params: Mapping[str, Any]) -> bool:
    total = 0
    for index, char in enumerate(reversed(serial)):
        value = _ruby_int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return (10 - total % 10) % 10 == _ruby_int(check)


def _s10(serial: str, check: str, params: Mapping[str, Any]) -> bool:
    weights = params.get("weightings") or [8, 6, 4, 2, 3, 5, 9, 7]
    modulo = int(params.get("modulo", 11))
    remainder = sum(_ruby_int(c) * w for c, w in zip(serial, weights)) % modulo
    # UPU S10: remainder 0 gives 5 and remainder 1 gives 0, otherwise 11 - remainder.
    expected = {0: 5, 1: 0}.get(remainder, modulo - remainder)
    return expected == _ruby_int(check)


def _sum_product(serial: str, check: str, params: Mapping[str, Any]) -> bool:
    weights = params.get("weightings") or []
    total = sum(_ruby_int(c) * w for c, w in zip(serial, weights))
    return total % int(params["modulo1"]) % int(params["modulo2"]) == _ruby_int(check)


def _mod_37_36(serial: str, check: str, params: Mapping[str, Any]) -> bool:
    # ISO 7064 hybrid MOD 37,36 as in the DPD parcel label specification.
    modulo = int(params.get("modulo", 36))
    alphabet = params.get("alphabet") or "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    value = modulo
    for char in serial:
        value += alphabet.index(char) if char in alphabet else _ruby_int(char)
        if value > modulo:
            value -= modulo
        value *= 2
        if value > modulo:
            value -= modulo + 1
    value = modulo + 1 - value
    if value == modulo:
        value = 0
    return alphabet[value] == check


CHECKSUMS: dict[str, Callable[[str, str, Mapping[str, Any]], bool]] = {
    "mod10": _mod10,
    "mod7": _mod7,
    "luhn": _luhn,
    "s10": _s10,
    "sum_product_with_weightings_and_modulo": _sum_product,
    "mod_37_36": _mod_37_36,
}


# --------------------------------------------------------------------------- matching


@lru_cache(maxsize=64)  # identify() normalises the same value once per service
def _normalise(value: str) -> str:
    return _WHITESPACE.sub("", value).upper()


def _full_match(definition: ServiceDefinition, value: str) -> re.Match[str] | None:
    """Match the whole value with all whitespace removed, as the gem does.

    Matching the value as typed would let spaces count as characters where a regex allows
    them (DHL e-commerce would accept `LX 176 35035`, whose 8 digits are too few), and
    would refuse spaces where a regex does not expect them (`JJD 00 9999 9999`).
    """
    return definition.pattern.fullmatch(_normalise(value))


def _group(found: re.Match[str], name: str) -> str | None:
    if name not in found.re.groupindex:
        return None
    text = found.group(name)
    return None if text is None else _normalise(text)


def _serial_number(definition: ServiceDefinition, found: re.Match[str]) -> str:
    serial = _group(found, "SerialNumber") or ""
    prepend = (definition.validation.get("serial_number_format") or {}).get("prepend_if")
    # E.g. OnTrac "C…" numbers are checked as "4…", USPS 20 digit numbers as "91…".
    if prepend and re.search(prepend["matches_regex"], serial):
        return prepend["content"] + serial
    return serial


def _checksum_passes(definition: ServiceDefinition, found: re.Match[str]) -> bool:
    params = definition.checksum
    if params is None:
        return True
    algorithm = CHECKSUMS.get(params["name"])
    if algorithm is None:
        # An algorithm we do not know cannot vouch for the number.
        return False
    return algorithm(_serial_number(definition, found), _group(found, "CheckDigit") or "", params)


def _lookup_entry(section: Mapping[str, Any], value: str) -> Mapping[str, Any] | None:
    for entry in section.get("lookup") or ():
        if "matches" in entry and entry["matches"] is not None:
            if value == entry["matches"]:
                return entry
        elif entry.get("matches_regex") and re.search(entry["matches_regex"], value):
            return entry
    return None


def matching_additional(definition: ServiceDefinition, found: re.Match[str]) -> dict[str, Mapping[str, Any]]:
    """The lookup entry each `additional` section finds, keyed by section name (as the gem)."""
    sections: dict[str, Mapping[str, Any]] = {}
    for section in definition.additional:
        value = _group(found, section.get("regex_group_name", ""))
        entry = None if value is None else _lookup_entry(section, value)
        if entry is not None:
            sections[section["name"]] = entry
            # The brief's data names some checks by group (CountryCode) rather than section.
            sections.setdefault(section.get("regex_group_name", ""), entry)
    return sections


def _lookups_pass(definition: ServiceDefinition, found: re.Match[str]) -> bool:
    required = definition.required_lookups
    if not required:
        return True
    found_sections = matching_additional(definition, found)
    return all(name in found_sections for name in required)


def _tracking_url(definition: ServiceDefinition, found: re.Match[str], number: str) -> str | None:
    # Like the gem, a matched "Courier" lookup (S10 postal operators) may carry its own URL.
    courier = matching_additional(definition, found).get("Courier") or {}
    template = courier.get("tracking_url") or definition.tracking_url
    return template.replace("%s", quote(number, safe=""), 1) if template else None


def match_service(definition: ServiceDefinition, value: str) -> TrackingMatch | None:
    """The match of `value` against one service, valid or not; None when the regex fails."""
    found = _full_match(definition, value)
    if found is None:
        return None
    number = _normalise(value)
    return TrackingMatch(
        courier=definition.courier,
        courier_code=definition.courier_code,
        service=definition.service,
        service_id=definition.service_id,
        valid=_checksum_passes(definition, found) and _lookups_pass(definition, found),
        tracking_number=number,
        tracking_url=_tracking_url(definition, found, number),
    )


def _rank(definition: ServiceDefinition) -> tuple[int, int, int, int]:
    """Sort key, best first: a passed check digit is far stronger evidence than a bare
    pattern, a passed lookup (S10 country) comes next, then the more specific pattern, then
    the order of the data files so that the result never varies between runs."""
    return (
        0 if definition.checksum else 1,
        -len(definition.required_lookups),
        -definition.specificity,
        definition.order,
    )


def identify(value: str) -> list[TrackingMatch]:
    """Every service `value` is a valid number of, best first."""
    if not value or not value.strip() or len(_normalise(value)) > MAX_LENGTH:
        return []
    matches = []
    for definition in _ranked_definitions(str(data_folder())):
        match = match_service(definition, value)
        if match is not None and match.valid:
            matches.append(match)
    return matches


@lru_cache(maxsize=8)
def _ranked_definitions(folder: str) -> tuple[ServiceDefinition, ...]:
    """The services in `folder`, best first: sorted once, not on every search (each search asks)."""
    return tuple(sorted(load_definitions(Path(folder)), key=_rank))


def identify_one(value: str) -> TrackingMatch | None:
    """The best valid match for `value`, or None."""
    matches = identify(value)
    return matches[0] if matches else None


# --------------------------------------------------------------------------- generators
# Demo data needs numbers that pass the carriers' check digits. The check digit is found by
# trying each candidate against the data's own checksum, so it can never disagree with
# recognition.


def _definition_by_id(service_id: str) -> ServiceDefinition:
    for definition in load_definitions():
        if definition.service_id == service_id:
            return definition
    raise LookupError(f"no tracking number definition with id {service_id!r}")


def check_digit_for(service_id: str, serial: str) -> str:
    """The check character that makes `serial` pass the checksum of service `service_id`."""
    params = _definition_by_id(service_id).checksum
    if params is None:
        raise ValueError(f"{service_id} has no checksum")
    algorithm = CHECKSUMS[params["name"]]
    candidates = params.get("alphabet") or "0123456789"
    for candidate in candidates:
        if algorithm(serial, candidate, params):
            return candidate
    raise ValueError(f"no check digit makes {serial!r} valid for {service_id}")


def _checked(service_id: str, number: str) -> str:
    """Refuse to hand out a number its own definition would not accept."""
    match = match_service(_definition_by_id(service_id), number)
    if match is None or not match.valid:
        raise ValueError(f"{number!r} is not a valid {service_id} number")
    return number


def dhl_express_number(serial: int) -> str:
    """A 10 digit DHL Express waybill: 9 digit serial plus its mod 7 check digit."""
    if not 0 <= serial < 10**9:
        raise ValueError("serial must have at most 9 digits")
    digits = f"{serial:09d}"
    return _checked("dhl_express", digits + check_digit_for("dhl_express", digits))


def ups_number(shipper: str, service: str, package: int) -> str:
    """`1Z` + 6 character shipper + 2 character service + 7 digit package + check digit."""
    shipper, service = shipper.strip().upper(), service.strip().upper()
    if not re.fullmatch(r"[A-Z0-9]{6}", shipper) or not re.fullmatch(r"[A-Z0-9]{2}", service):
        raise ValueError("shipper must be 6 and service 2 letters or digits")
    if not 0 <= package < 10**7:
        raise ValueError("package must have at most 7 digits")
    serial = f"{shipper}{service}{package:07d}"
    return _checked("ups", f"1Z{serial}{check_digit_for('ups', serial)}")


def dpd_number(
    parcel: int,
    *,
    barcode: bool = False,
    destination_zip: str = "0000000",
    service: str = "101",
    country: str = "276",
) -> str:
    """A DPD parcel number: 14 digits plus its MOD 37,36 check character (`dpd_14`).

    With `barcode=True`, the 28 character label barcode (`dpd`): 7 digit destination zip,
    the 14 digit parcel number, 3 digit service code, 3 digit ISO country number, check.
    """
    if not 0 <= parcel < 10**14:
        raise ValueError("parcel must have at most 14 digits")
    if not barcode:
        serial = f"{parcel:014d}"
        return _checked("dpd_14", serial + check_digit_for("dpd_14", serial))
    if not (re.fullmatch(r"\d{7}", destination_zip) and re.fullmatch(r"\d{3}", service)
            and re.fullmatch(r"\d{3}", country)):
        raise ValueError("destination_zip must be 7 digits, service and country 3 digits")
    serial = f"{destination_zip}{parcel:014d}{service}{country}"
    return _checked("dpd", serial + check_digit_for("dpd", serial))
