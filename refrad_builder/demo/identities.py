"""Fake but distinctive identities for the demo studies: patients, staff, institutions, IDs.

Names, places and IDs are ASCII and made from invented parts (IDs carry letters), so a byte
search of pipeline output for one of them cannot hit by chance.
Dates are chosen so that a date shift of up to 365 days can never turn one planted date
into another: all studies share one study day and one prior-exam day more than 400 days
earlier, and birth dates lie at least 400 days apart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass

import numpy as np


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SURNAME_PARTS = {
    "de": (
        _words("Quendel Brack Zirbel Wendel Tiefen Mistel Ginster Hasel Kessel Lerchen"),
        _words("meier horst huber haag bruck bacher winkel reuther lechner moser hofer staller"),
    ),
    "en": (
        _words("Thistle Pember Ash Bramble Quill Marsh Wren Crag Fennel Gorse"),
        _words("wick combe thorpe wood ford hurst ridge field bury stow leigh worth"),
    ),
}
GIVEN_NAMES = {
    ("de", "M"): _words("Wigbert Eckehard Hildebrand Gunthram Theodulf Reinmar Adalbero Sigisbert"),
    ("de", "F"): _words("Ottilie Radegund Walburga Notburga Irmtraud Sieglinde Reinhild Adelgund"),
    ("en", "M"): _words(
        "Peregrine Barnaby Cuthbert Bartholomew Archibald Ignatius Thaddeus Ambrose"
    ),
    ("en", "F"): _words(
        "Millicent Ottoline Euphemia Wilhelmina Clementine Philippa Henrietta Perpetua"
    ),
}
TOWNS = {
    "de": _words(
        "Untermerzenau Wolfsgrabenheim Quellingen Finsterried Ammerbrunn Krummendeich Hasenwinkel"
    ),
    "en": _words("Marrowby Thistledown Wrexcombe Pellingham Dunmoorvale Cragsworth Fennimore"),
}
STREETS = {
    "de": _words("Quittenweg Mergelgraben Holunderstieg Schlehenpfad Kiebitzring Distelanger"),
    "en": (
        "Larkspur Close",
        "Mallowbank Road",
        "Sorrel Lane",
        "Teasel Gardens",
        "Yarrow Crescent",
        "Bracken Mews",
    ),
}
INSTITUTION_FORMS = {
    "de": ("Kreisklinikum {town}", "St.-Gangolf-Hospital {town}", "Radiologisches Zentrum {town}"),
    "en": ("{town} General Hospital", "St Aldhelm's Infirmary {town}", "{town} Royal Infirmary"),
}
STUDY_DAY_BASE = dt.date(2024, 1, 8)
PRIOR_GAP_DAYS = 430
BIRTH_BASE = dt.date(1936, 2, 1)
BIRTH_SLOT_DAYS = 420


@dataclass(frozen=True)
class Person:
    """A person's name; ``prefix`` is a title such as "Dr. med."."""

    family: str
    given: str
    middle: str = ""
    prefix: str = ""

    @property
    def pn(self) -> str:
        """The DICOM PN value (family^given^middle^prefix), trailing empties dropped."""
        return "^".join((self.family, self.given, self.middle, self.prefix)).rstrip("^")

    @property
    def parts(self) -> list[str]:
        """The distinctive name parts (what must never survive de-identification)."""
        return [p for p in (self.family, self.given, self.middle) if p]


@dataclass(frozen=True)
class Institution:
    """A hospital with its address, staff and devices."""

    name: str
    town: str
    street: str
    address: str
    department: str
    stations: dict[str, str]
    device_serials: dict[str, str]
    radiologists: tuple[Person, ...]
    technologist: Person


@dataclass(frozen=True)
class Patient:
    """A patient with the identifiers and contact data a hospital system holds."""

    person: Person
    sex: str
    birth: dt.date
    patient_id: str
    other_id: str
    issuer: str
    legacy_id: str
    street: str
    town: str
    address: str
    phone: str
    postcode: str


@dataclass(frozen=True)
class Visit:
    """One study's people, identifiers and dates."""

    language: str
    patient: Patient
    institution: Institution
    referring: Person
    referring_id: str
    reading: Person
    performing: Person
    accession: str
    study_id: str
    request_id: str
    study_date: dt.date
    study_time: str
    prior_date: dt.date

    def header_phi(self, modality: str) -> list[str]:
        """Every distinctive PHI string the DICOM headers of this visit carry."""
        p, inst = self.patient, self.institution
        people = (p.person, self.referring, self.reading, self.performing, inst.technologist)
        out = [part for person in people for part in person.parts]
        out += [p.patient_id, p.other_id, p.issuer, p.legacy_id, p.birth.strftime("%Y%m%d")]
        out += [p.address, p.street, p.town, p.postcode, p.phone]
        out += [inst.name, inst.town, inst.street, inst.address]
        out += [inst.stations[modality], inst.device_serials[modality]]
        out += [self.accession, self.study_id, self.request_id, self.referring_id]
        out.append(self.study_date.strftime("%Y%m%d"))
        return out

    def age_years(self) -> int:
        """Age at the study date."""
        b, d = self.patient.birth, self.study_date
        return d.year - b.year - ((d.month, d.day) < (b.month, b.day))


def uid(seed: int, *parts: str) -> str:
    """A fixed ``2.25.<int>`` UID derived from the seed and a name (no clock, no randomness)."""
    digest = hashlib.sha256("\x1f".join(("refrad-demo", str(seed), *parts)).encode()).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


class NameSource:
    """Draws identities without repeating a surname, deterministically from one generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._surnames = {}
        for lang, (heads, tails) in SURNAME_PARTS.items():
            combos = [h + t for h in heads for t in tails]
            self._surnames[lang] = [combos[i] for i in rng.permutation(len(combos))]
        self._birth_slots = [int(i) for i in rng.permutation(48)]

    def surname(self, lang: str) -> str:
        """A surname not handed out before."""
        if not self._surnames[lang]:
            raise ValueError("the demo ran out of distinct fake surnames; ask for fewer studies")
        return self._surnames[lang].pop()

    def pick(self, options: tuple[str, ...]) -> str:
        """One of ``options``."""
        return options[int(self.rng.integers(len(options)))]

    def digits(self, n: int) -> str:
        """``n`` random digits, the first not zero."""
        first = str(int(self.rng.integers(1, 10)))
        return first + "".join(str(int(d)) for d in self.rng.integers(0, 10, size=n - 1))

    def letters(self, n: int) -> str:
        """``n`` random capital letters."""
        return "".join(chr(65 + int(c)) for c in self.rng.integers(0, 26, size=n))

    def person(
        self, lang: str, sex: str | None = None, prefix: str = "", middle: bool = False
    ) -> Person:
        """A new person (random sex unless given)."""
        sex = sex or self.pick(("M", "F"))
        given_pool = GIVEN_NAMES[(lang, sex)]
        given = self.pick(given_pool)
        mid = self.pick(tuple(g for g in given_pool if g != given)) if middle else ""
        return Person(self.surname(lang), given, mid, prefix)

    def birth_date(self) -> dt.date:
        """A birth date in a slot at least 400 days from every other patient's."""
        if not self._birth_slots:
            # Past 48 patients slots repeat, so birth dates may lie close together.
            self._birth_slots = [int(i) for i in self.rng.permutation(48)]
        slot = self._birth_slots.pop()
        return BIRTH_BASE + dt.timedelta(
            days=slot * BIRTH_SLOT_DAYS + int(self.rng.integers(0, 15))
        )


def make_institution(src: NameSource, lang: str, town: str) -> Institution:
    """An institution in ``town`` with two radiologists and a technologist."""
    title = "Dr. med." if lang == "de" else "Dr"
    name = src.pick(INSTITUTION_FORMS[lang]).format(town=town)
    street = src.pick(STREETS[lang])
    if lang == "de":
        address = f"{street} {int(src.rng.integers(1, 90))}, {src.digits(5)} {town}"
        department = "Institut fuer Radiologie"
    else:
        postcode = f"{src.letters(2)}{src.digits(1)} {src.digits(1)}{src.letters(2)}"
        address = f"{int(src.rng.integers(1, 90))} {street}, {town} {postcode}"
        department = "Department of Radiology"
    return Institution(
        name=name,
        town=town,
        street=street,
        address=address,
        department=department,
        stations={m: f"{m}{town[:4].upper()}{src.digits(2)}" for m in ("CT", "MR")},
        device_serials={m: f"SN{src.digits(5)}{src.letters(1)}" for m in ("CT", "MR")},
        radiologists=(src.person(lang, prefix=title), src.person(lang, prefix=title)),
        technologist=src.person(lang),
    )


def make_patient(src: NameSource, lang: str) -> Patient:
    """A new patient with identifiers and an address."""
    sex = src.pick(("M", "F"))
    person = src.person(lang, sex=sex, middle=True)
    town = src.pick(TOWNS[lang])
    street = src.pick(STREETS[lang])
    if lang == "de":
        postcode = src.digits(5)
        address = f"{street} {int(src.rng.integers(1, 120))}, {postcode} {town}"
        phone = f"+49 {src.digits(4)} {src.digits(6)}"
    else:
        postcode = f"{src.letters(2)}{src.digits(1)} {src.digits(1)}{src.letters(2)}"
        address = f"{int(src.rng.integers(1, 120))} {street}, {town} {postcode}"
        phone = f"+44 1632 {src.digits(6)}"
    return Patient(
        person=person,
        sex=sex,
        birth=src.birth_date(),
        patient_id=f"{src.letters(2)}{src.digits(8)}",
        other_id=f"KIS-{src.digits(4)}-{src.digits(4)}",
        issuer=f"HIS-{town.upper()}",
        legacy_id=f"LEG{src.digits(8)}",
        street=street,
        town=town,
        address=address,
        phone=phone,
        postcode=postcode,
    )


def study_day(seed: int) -> dt.date:
    """The one acquisition day shared by every study of a demo (see the module note)."""
    return STUDY_DAY_BASE + dt.timedelta(days=seed % 300)


def make_visit(src: NameSource, lang: str, institution: Institution, day: dt.date) -> Visit:
    """A study visit: a new patient and referrer, staff from ``institution``."""
    title = "Dr. med." if lang == "de" else "Dr"
    patient = make_patient(src, lang)
    hh, mm, ss = (
        int(src.rng.integers(7, 18)),
        int(src.rng.integers(0, 60)),
        int(src.rng.integers(0, 60)),
    )
    reading = institution.radiologists[int(src.rng.integers(2))]
    performing = next(r for r in institution.radiologists if r != reading)
    return Visit(
        language=lang,
        patient=patient,
        institution=institution,
        referring=src.person(lang, prefix=title),
        referring_id=f"LANR{src.digits(9)}",
        reading=reading,
        performing=performing,
        accession=f"RA{day:%y}{src.letters(1)}{src.digits(6)}",
        study_id=f"UX{src.digits(6)}",
        request_id=f"RQ{src.digits(8)}",
        study_date=day,
        study_time=f"{hh:02d}{mm:02d}{ss:02d}",
        prior_date=day - dt.timedelta(days=PRIOR_GAP_DAYS),
    )


def birth_text(d: dt.date, lang: str) -> str:
    """A birth date as a report writes it: 14.03.1952 (German) or 03/14/1952 (English)."""
    return d.strftime("%d.%m.%Y") if lang == "de" else d.strftime("%m/%d/%Y")


def exam_text(d: dt.date, lang: str) -> str:
    """An exam date as a report writes it: 12.06.2024 (German) or 2024-06-12 (English)."""
    return d.strftime("%d.%m.%Y") if lang == "de" else d.isoformat()
