"""German and English report text for the phantom studies.

A report names its patient, birth date, patient ID, accession, referrer, reader and
institution (all of which the study's headers also carry, so the pipeline can scrub them),
describes the phantom's organs with its planted abnormalities, negations and laterality,
quotes measurements, and points to key images that exist and show the organ described.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refrad_builder.demo.identities import Visit, birth_text, exam_text


@dataclass(frozen=True)
class KeyImage:
    """A key-image reference as written in a report; ``organ`` is the class the slice shows."""

    series: int | None
    image: int
    organ: str


@dataclass(frozen=True)
class FindingText:
    """What a report says about one planted finding, and the slice it points to."""

    kind: str
    size_mm: float
    side: str | None
    image: int
    organ: str


@dataclass(frozen=True)
class ReportText:
    """A finished report with its references and the PHI strings it spells out."""

    text: str
    language: str
    key_images: tuple[KeyImage, ...]
    phi: tuple[str, ...]


SIDE_DE = {"left": "links", "right": "rechts"}
OTHER = {"left": "right", "right": "left"}
CLINICAL = {
    "de": (
        "Z. n. Kolonkarzinom, onkologische Nachsorge.",
        "Unklare Oberbauchschmerzen seit drei Wochen.",
        "Erhöhte Leberwerte, Gewichtsverlust.",
        "Arterielle Hypertonie, Flankenschmerz.",
    ),
    "en": (
        "History of colorectal cancer, oncological surveillance.",
        "Upper abdominal pain for three weeks.",
        "Elevated liver enzymes and weight loss.",
        "Hypertension, flank pain.",
    ),
}
QUESTION = {
    "de": ("Metastasen?", "Raumforderung?", "Ursache der Beschwerden?", "Verlaufskontrolle."),
    "en": ("Metastases?", "Mass lesion?", "Cause of symptoms?", "Follow-up."),
}


def cm(size_mm: float, lang: str) -> str:
    """A length in cm with one decimal and the language's decimal mark: 3,2 cm / 3.2 cm."""
    text = f"{size_mm / 10.0:.1f}"
    return (text.replace(".", ",") if lang == "de" else text) + " cm"


def ref(series: int | None, image: int, lang: str) -> str:
    """A key-image reference: "(Se 3/Bi 12)" or "(series 4, image 57)"."""
    if series is None:
        return f"(Bild {image})" if lang == "de" else f"(image {image})"
    return f"(Se {series}/Bi {image})" if lang == "de" else f"(series {series}, image {image})"


class _Writer:
    """Sentences per organ; records each key image it cites."""

    def __init__(self, lang: str, modality: str, series: int, rng: np.random.Generator):
        self.lang = lang
        self.modality = modality
        self.series = series
        self.rng = rng
        self.compare = bool(rng.random() < 0.5)
        self.keys: list[KeyImage] = []

    def choose(self, *options: str) -> str:
        return options[int(self.rng.integers(len(options)))]

    def ref(self, image: int, organ: str) -> str:
        self.keys.append(KeyImage(self.series, image, organ))
        return ref(self.series, image, self.lang)

    def liver(self, f: FindingText | None) -> tuple[str, str | None]:
        de = self.lang == "de"
        if f is None:
            return (
                "Leber normal groß, Parenchym homogen, keine fokalen Läsionen."
                if de
                else "The liver is normal in size with homogeneous parenchyma and no focal lesion.",
                None,
            )
        size, r = cm(f.size_mm, self.lang), self.ref(f.image, f.organ)
        if self.modality == "MR":
            if de:
                return (
                    f"Im rechten Leberlappen glatt begrenzte, deutlich T2-hyperintense Läsion von {size} {r}, vereinbar mit einem Hämangiom.",
                    f"Hämangiom im rechten Leberlappen ({size}).",
                )
            return (
                f"A well-circumscribed, markedly T2-hyperintense lesion of {size} in the right hepatic lobe {r}, consistent with a haemangioma.",
                f"Haemangioma in the right hepatic lobe ({size}).",
            )
        new_de = "neu aufgetretene " if self.compare else ""
        if de:
            return (
                f"Im rechten Leberlappen {new_de}hypodense, unscharf begrenzte Läsion mit {size} Durchmesser {r}.",
                f"{(new_de or 'unklare ').capitalize()}hypodense Leberläsion rechts ({size}), DD Metastase.",
            )
        return (
            f"{'A new' if self.compare else 'An'} ill-defined hypodense lesion measuring {size} in the right hepatic lobe {r}.",
            f"{'New' if self.compare else 'Indeterminate'} hypodense liver lesion ({size}); metastasis to be excluded.",
        )

    def spleen(self, f: FindingText | None, normal_image: int) -> tuple[str, str | None]:
        de = self.lang == "de"
        if f is not None:
            size, r = cm(f.size_mm, self.lang), self.ref(f.image, f.organ)
            if de:
                return f"Milz vergrößert mit {size} Durchmesser {r}.", f"Splenomegalie ({size})."
            return f"The spleen is enlarged, measuring {size} {r}.", f"Splenomegaly ({size})."
        if self.rng.random() < 0.5:
            return ("Milz unauffällig." if de else "The spleen is unremarkable."), None
        r = self.ref(normal_image, "spleen")
        return (f"Milz normal groß {r}." if de else f"Normal-sized spleen {r}."), None

    def kidneys(self, f: FindingText | None) -> tuple[str, str | None]:
        de = self.lang == "de"
        if f is None:
            return (
                "Beide Nieren normal groß, kein Harnstau."
                if de
                else "Both kidneys are normal in size without hydronephrosis.",
                None,
            )
        side, other = f.side or "left", OTHER[f.side or "left"]
        size, r = cm(f.size_mm, self.lang), self.ref(f.image, f.organ)
        if de:
            kind = "wasseräquivalenten" if self.modality == "CT" else "T2-hyperintensen"
            return (
                f"Niere {SIDE_DE[side]} mit einer glatt begrenzten, {kind} Zyste von {size} {r}. "
                f"Niere {SIDE_DE[other]} unauffällig. Kein Harnstau beidseits.",
                f"Einfache Nierenzyste {SIDE_DE[side]} (Bosniak I).",
            )
        return (
            f"Simple cyst of {size} in the {side} kidney {r}. The {other} kidney is unremarkable. No hydronephrosis.",
            f"Simple {side} renal cyst (Bosniak I).",
        )

    def aorta(self, f: FindingText | None) -> tuple[str, str | None]:
        de = self.lang == "de"
        if f is None:
            return ("Aorta normkalibrig." if de else "Normal calibre of the aorta."), None
        size, r = cm(f.size_mm, self.lang), self.ref(f.image, f.organ)
        if de:
            return (
                f"Ektasie der Aorta auf {size} {r}.",
                f"Aortenektasie ({size}), Verlaufskontrolle empfohlen.",
            )
        return (
            f"The aorta is ectatic, measuring {size} {r}.",
            f"Ectatic aorta ({size}); follow-up recommended.",
        )


def _findings(
    w: _Writer, visit: Visit, findings: list[FindingText], spleen_image: int
) -> tuple[list[str], list[str], list[str]]:
    """Findings sentences, numbered impressions and the dates they quote."""
    de = w.lang == "de"
    by_kind = {f.kind: f for f in findings}
    sentences: list[str] = []
    impressions: list[str] = []
    dates: list[str] = []
    if w.compare:
        prior = exam_text(visit.prior_date, w.lang)
        dates.append(prior)
        sentences.append(
            f"Zum Vergleich liegt die Voruntersuchung vom {prior} vor."
            if de
            else f"Comparison is made with the prior examination dated {prior}."
        )
    biliary = (
        "Gallenblase und Pankreas unauffällig."
        if de
        else "Gallbladder and pancreas are unremarkable."
    )
    for text, impression in (
        w.liver(by_kind.get("liver_lesion")),
        (biliary, None),
        w.spleen(by_kind.get("splenomegaly"), spleen_image),
        w.kidneys(by_kind.get("kidney_cyst")),
        w.aorta(by_kind.get("aortic_ectasia")),
    ):
        sentences.append(text)
        if impression:
            impressions.append(f"{len(impressions) + 1}. {impression}")
    ct = w.modality == "CT"
    if de:
        sentences += [
            "Keine freie Flüssigkeit.",
            w.choose(
                "Kein Pleuraerguss.",
                "Miterfasste Lungenbasen belüftet, kein Pleuraerguss beidseits.",
            ),
            "Keine suspekten ossären Läsionen der miterfassten Wirbelkörper."
            if ct
            else "Kein Knochenmarködem der miterfassten Wirbelkörper.",
        ]
    else:
        sentences += [
            "No free fluid.",
            w.choose(
                "No pleural effusion.", "The imaged lung bases are clear; no pleural effusion."
            ),
            "No suspicious osseous lesion." if ct else "No bone marrow oedema.",
        ]
    return sentences, impressions, dates


def _letter_de(visit: Visit, w: _Writer, name: str, body: str, impressions: str) -> list[str]:
    p, ref_doc, reader = visit.patient, visit.referring, visit.reading
    salutation = "Herr" if p.sex == "M" else "Frau"
    exam = (
        "CT Abdomen mit Kontrastmittel (portalvenös)"
        if w.modality == "CT"
        else "MRT Oberbauch (T2 HASTE transversal)"
    )
    return [
        visit.institution.name,
        "Institut für Radiologie",
        "",
        f"Patient: {salutation} {name}, geb. {birth_text(p.birth, 'de')}, PID {p.patient_id}",
        f"Untersuchung: {exam} vom {exam_text(visit.study_date, 'de')}, "
        f"Auftragsnummer {visit.accession}",
        f"Zuweiser: Dr. med. {ref_doc.given} {ref_doc.family}",
        "",
        "Klinische Angaben:",
        w.choose(*CLINICAL["de"]),
        "",
        "Fragestellung:",
        w.choose(*QUESTION["de"]),
        "",
        "Befund:",
        body,
        "",
        "Beurteilung:",
        impressions,
        "",
        "Mit freundlichen Grüßen",
        f"Dr. med. {reader.given} {reader.family}",
    ]


def _letter_en(visit: Visit, w: _Writer, name: str, body: str, impressions: str) -> list[str]:
    p, ref_doc, reader = visit.patient, visit.referring, visit.reading
    salutation = "Mr" if p.sex == "M" else "Mrs"
    exam = (
        "CT abdomen with IV contrast (portal venous phase)"
        if w.modality == "CT"
        else "MRI upper abdomen (axial T2 HASTE)"
    )
    return [
        f"{visit.institution.name}, Department of Radiology",
        "",
        f"Patient: {salutation} {name}, DOB {birth_text(p.birth, 'en')}, MRN {p.patient_id}",
        f"Examination: {exam}, {exam_text(visit.study_date, 'en')}, accession {visit.accession}",
        f"Referring physician: Dr {ref_doc.given} {ref_doc.family}",
        "",
        "Clinical information:",
        w.choose(*CLINICAL["en"]),
        "",
        "Indication:",
        w.choose(*QUESTION["en"]),
        "",
        "Findings:",
        body,
        "",
        "Impression:",
        impressions,
        "",
        f"Reported by Dr {reader.given} {reader.family}, consultant radiologist",
    ]


def write_report(
    visit: Visit,
    modality: str,
    series_number: int,
    findings: list[FindingText],
    spleen_image: int,
    rng: np.random.Generator,
) -> ReportText:
    """The report of one phantom study; deterministic for a given ``rng`` state."""
    lang = visit.language
    p, ref_doc, reader = visit.patient, visit.referring, visit.reading
    w = _Writer(lang, modality, series_number, rng)
    sentences, impressions, dates = _findings(w, visit, findings, spleen_image)
    with_given = bool(rng.random() < 0.5)
    name = f"{p.person.given} {p.person.family}" if with_given else p.person.family
    letter = _letter_de if lang == "de" else _letter_en
    lines = letter(visit, w, name, " ".join(sentences), "\n".join(impressions))

    phi = [birth_text(p.birth, lang), exam_text(visit.study_date, lang), *dates]
    phi += [p.person.family, p.patient_id, visit.accession, visit.institution.name]
    phi += [ref_doc.given, ref_doc.family, reader.given, reader.family]
    if with_given:
        phi.append(p.person.given)
    return ReportText("\n".join(lines) + "\n", lang, tuple(w.keys), tuple(phi))
