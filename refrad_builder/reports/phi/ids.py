"""Identifiers: labelled numbers and codes that only identifiers look like."""

from __future__ import annotations

import re

from refrad_builder.reports.phi.base import _UP, Rule

_ID_LABEL = (
    r"(?:(?i:Pat(?:ienten)?\.?[ \t]?-?[ \t]?(?:Nr|ID|Nummer)\.?|PID|Patientennummer|Patienten-Nummer|"
    r"Fall(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)?|Aufnahme(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)|"
    r"Auftrag(?:s)?(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)?|Acc\.?(?:[ \t]?-?[ \t]?(?:Nr|No)\.?)?|Acc\#|"
    r"Accession(?:[ \t]?(?:Nr|No|Number|\#)\.?)?|Untersuchungs(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)|"
    r"Befund(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)|KV[ \t]?-?[ \t]?Nr\.?|Versicherten(?:[ \t]?-?[ \t]?(?:nr|nummer)\.?)|"
    r"Vers\.[ \t]?-?[ \t]?Nr\.?|Krankenversichertennummer|Versicherungsnummer|LANR|BSNR|"
    r"Notfall[ \t]?-?[ \t]?(?:ID|Nr\.?|Nummer)|Zugangscode|Code|Studien[ \t]?-?[ \t]?ID|"
    r"MRN|Medical[ \t]+record(?:[ \t]+(?:number|no\.?))?|Hospital[ \t]+(?:number|no\.?)|"
    r"NHS(?:[ \t]+(?:number|no\.?))?|FIN|CSN|Visit[ \t]+(?:no\.?|number|\#)|Aktenzeichen|Case(?:[ \t]+(?:ID|no\.?|number))?|Encounter(?:[ \t]+(?:ID|no\.?|number))?|"
    r"Admission[ \t]+(?:no\.?|number)|Order(?:[ \t]+(?:no\.?|number|\#))?|Report[ \t]+(?:no\.?|number|\#)|"
    r"Study[ \t]+(?:number|ID|no\.?)|Insurance[ \t]+(?:ID|no\.?|number)|Member[ \t]+ID|"
    r"Policy[ \t]+(?:no\.?|number)|Medicare(?:[ \t]+(?:ID|no\.?|number))?|Medicaid[ \t]+ID|SSN|"
    r"Social[ \t]+security[ \t]+(?:number|no\.?)|NPI|ID|Alias|trauma[ \t]+alias|access[ \t]+code|"
    r"token|Hospital[ \t]+ID|(?:Krebs|Tumor)register(?:[ \t]?-?[ \t]?(?:nr|nummer|ID)\.?)?|"
    r"Registry(?:[ \t]+(?:ID|no\.?|number))?|Sozialversicherungs(?:nummer|-Nr\.?)|SV[ \t]?-?[ \t]?Nr\.?|"
    r"Rentenversicherungsnummer|RV[ \t]?-?[ \t]?Nr\.?|Steuer[ \t]?-?[ \t]?ID|IK[ \t]?-?[ \t]?Nr\.?|"
    r"PPSN|PPS[ \t]+(?:no\.?|number)|National[ \t]+Insurance(?:[ \t]+(?:no\.?|number))?|NINO|"
    r"CHI(?:[ \t]+(?:no\.?|number))?|IHI|Passport(?:[ \t]+(?:no\.?|number))?|"
    r"Hosp\.?[ \t]*(?:No|Nr|number)\.?|Unit[ \t]+(?:no\.?|number)|Ref(?:erence)?(?:[ \t]+(?:no\.?|number))?|"
    r"(?:Our|Your|MDT)[ \t]+ref\.?|(?:Ihr|unser)[ \t]+Zeichen|Job(?:[ \t]+(?:no\.?|number|\#))?|"
    r"Research[ \t]+ID|SVNR|Studienregister|Register(?:nummer)?|H&C[ \t]+No\.?|"
    # Australian business and Canadian personal health numbers, health card numbers
    r"ABN|ACN|PHN|ULI|OHIP|Health[ \t]+card(?:[ \t]+(?:no\.?|number))?)"
    # any abbreviation with "-Nr." ("AHV-Nr.", "ITS-Nr.")
    r"|[A-ZÄÖÜ]{2,6}-Nr\.?)"
)
# a value: a code with a digit, after an optional letter prefix ("ONC-REG 2023-0047", "TR
# 88-1204"), and further digit groups unless a unit follows ("2951 48736 1", "448 190 27")
_ID_VALUE = (
    r"(?:[A-Z]{1,8}(?:-[A-Z]{1,8})*[ \t](?=\d))?"
    r"(?=[A-Za-z0-9./-]*\d)[A-Za-z0-9][A-Za-z0-9./-]*[A-Za-z0-9]"
    r"(?:[ \t]\d+(?![\d.,]\d)(?![ \t]*(?i:mm|cm|ml|mg|m?Gy|%|x)\b)){0,3}"
)


def _not_a_year_range(text: str, s: int, e: int, m: object) -> tuple[int, int] | None:
    if re.fullmatch(r"(?:19|20)\d{2}[-–/](?:19|20)\d{2}", text[s:e]):
        return None
    return s, e


def _code_like(value: str) -> bool:
    """4 or more digits, a group of 2 or more digits, and not a vertebra or TNM range
    ("C5-C6", "T12-L1")."""
    groups = [g for g in value.replace("/", "-").split("-") if g]
    return (
        sum(c.isdigit() for c in value) >= 4
        and any(sum(c.isdigit() for c in g) >= 2 for g in groups)
        and not all(len(g) <= 3 for g in groups)
    )


_ID_RULES = [
    Rule(
        "labelled",
        rf"(?<![\w]){_ID_LABEL}[ \t]*(?::|\.|\#|-)?[ \t]*(?P<phi>{_ID_VALUE})(?![\w])",
        0.85,
        adjust=lambda t, s, e, m: (s, e) if sum(c.isalnum() for c in t[s:e]) >= 3 else None,
    ),
    # RAD-2023-009911, A1234567, MRN00482913, K2024-4417, PX-20240317-005
    Rule(
        "code",
        rf"(?<![\w./-])(?=[{_UP}0-9-]*\d{{3}})[{_UP}]{{1,7}}-?\d{{2,}}(?:[-/]\d+)*[{_UP}]?(?![\w/-])",
        0.6,
    ),
    # GHSG-HD21-0388, LC-MDT-25-0312, IT3-2025-0091, 24-S-06271, WX/442/19017: capitals and
    # digits joined by hyphens or slashes, with a letter and 4 or more digits
    Rule(
        "joined_code",
        rf"(?<![\w./-])(?=[{_UP}0-9/-]*[{_UP}])[{_UP}0-9]+(?:[-/][{_UP}0-9]+)+(?![\w/-])",
        0.6,
        adjust=lambda t, s, e, m: (s, e) if _code_like(t[s:e]) else None,
    ),
    # RX7Q0418823: one token of capitals and 5 or more digits
    Rule(
        "mixed_code",
        rf"(?<![\w./-])[{_UP}]{{1,4}}\d[{_UP}\d]*[{_UP}]\d{{5,}}(?![\w/-])",
        0.6,
    ),
    # Swiss AHV 756.4471.2290.13 and other dotted digit groups of 10 or more digits
    Rule(
        "dotted_number",
        r"(?<![\w.,])\d{2,4}(?:\.\d{2,6}){2,}(?![\w]|\.\d)",
        0.6,
        adjust=lambda t, s, e, m: (s, e) if sum(c.isdigit() for c in t[s:e]) >= 10 else None,
    ),
    Rule("long_number", r"(?<![\w.,/:-])\d{7,}(?![\w.,]\d|\w)", 0.6),
    # 4711-0815, 64-22318, 71-55-2390, 078-05-1120 (6+ digits in dash groups)
    Rule(
        "dashed_number",
        r"(?<![\w.,/-])\d{2,}(?:-\d{2,}){1,3}(?![\w/-]|\.\d)",
        0.55,
        adjust=lambda t, s, e, m: (
            _not_a_year_range(t, s, e, m) if sum(c.isdigit() for c in t[s:e]) >= 6 else None
        ),
    ),
    # Medicare beneficiary identifier 1EG4-TE5-MK73
    Rule("mbi", r"(?<![\w-])\d[A-Z][A-Z0-9]\d-?[A-Z][A-Z0-9]\d-?[A-Z]{2}\d{2}(?![\w-])", 0.7),
    # German pension insurance number 12 070839 T 014
    Rule("de_rvnr", r"(?<![\w])\d{2}[ \t]?\d{6}[ \t]?[A-Z][ \t]?\d{3}(?![\w])", 0.7),
    # UK National Insurance number QQ 12 34 56 C
    Rule(
        "uk_nino",
        r"(?<![\w])[A-Z]{2}[ \t]?\d{2}[ \t]?\d{2}[ \t]?\d{2}[ \t]?[A-D](?![\w])",
        0.7,
    ),
    # Irish PPS number 1234567TA
    Rule("ie_ppsn", r"(?<![\w])\d{7}[A-W][A-IW]?(?![\w])", 0.7),
    # bare 5-6 digit numbers need an ID word nearby (presidio context)
    Rule("short_number", r"(?<![\w.,/:-])\d{5,6}(?![\w.,/]\d|\w)", 0.3),
]
_ID_CONTEXT = [
    "nr",
    "nummer",
    "id",
    "pid",
    "mrn",
    "number",
    "fall",
    "fallnr",
    "fallnummer",
    "case",
    "acc",
    "accession",
    "auftrag",
    "auftragsnummer",
    "versichertennummer",
    "patientennummer",
    "hospital",
]
