"""The fixed phrases of rule-made text in German and English: caption templates, body-part
and plane names (a flat table), and the deterministic order rules use to pick among them."""

from __future__ import annotations

import hashlib

LANGS = ("de", "en")
GENERATOR = "rules:1"

T = {
    "en": {
        "modality": {"CT": "CT", "MR": "MR"},
        "plane": {"axial": "axial", "coronal": "coronal", "sagittal": "sagittal"},
        "caption": "{plane} {modality} image. Visible structures: {items}.",
        "caption_none": "{plane} {modality} image without segmented structures.",
        "grounded": "Visible structures: {items}.",
        "summary": "Report findings: {items}.",
        "summary_abnormal": "abnormal: {items}",
        "summary_normal": "unremarkable: {items}",
        "present_q": 'Is the structure "{name}" visible in this image?',
        "yes": "Yes",
        "no": "No",
        "list_q": "Which structures are segmented in this image?",
        "mc_q": "Which of the following structures is visible in this image?",
        "abnormal_q": 'According to the report, is the structure "{name}" abnormal?',
        "which_abnormal_q": "Which structures in this image are abnormal according to the report?",
        "mc_abnormal_q": "Which of these structures is abnormal according to the report?",
        "size_q": 'According to the report, how large is the finding in "{name}"?',
        "side_q": 'On which side is the finding in "{name}"?',
        "sides": {"left": "left", "right": "right"},
        "modality_q": "Which imaging modality was used?",
        "plane_q": "In which plane is this image?",
        "region_q": "Which body region does this image show?",
        "sex_q": "What is the sex of the patient?",
        "sex": {"M": "male", "F": "female", "O": "other"},
        "age_q": "How old is the patient (in years)?",
        "contrast_q": "Was contrast medium applied?",
    },
    "de": {
        "modality": {"CT": "CT", "MR": "MRT"},
        "plane": {"axial": "axiales", "coronal": "koronares", "sagittal": "sagittales"},
        "caption": "{plane} {modality}-Schnittbild. Sichtbare Strukturen: {items}.",
        "caption_none": "{plane} {modality}-Schnittbild ohne segmentierte Strukturen.",
        "grounded": "Sichtbare Strukturen: {items}.",
        "summary": "Befund laut Bericht: {items}.",
        "summary_abnormal": "auffällig: {items}",
        "summary_normal": "unauffällig: {items}",
        "present_q": "Ist die Struktur „{name}“ in diesem Bild sichtbar?",
        "yes": "Ja",
        "no": "Nein",
        "list_q": "Welche Strukturen sind in diesem Bild segmentiert?",
        "mc_q": "Welche der folgenden Strukturen ist in diesem Bild sichtbar?",
        "abnormal_q": "Ist die Struktur „{name}“ laut Befund auffällig?",
        "which_abnormal_q": "Welche Strukturen in diesem Bild sind laut Befund auffällig?",
        "mc_abnormal_q": "Welche dieser Strukturen ist laut Befund auffällig?",
        "size_q": "Wie groß ist der Befund in „{name}“ laut Befund?",
        "side_q": "Auf welcher Seite liegt der Befund in „{name}“?",
        "sides": {"left": "links", "right": "rechts"},
        "modality_q": "Mit welcher Bildgebungsmodalität wurde das Bild erstellt?",
        "plane_q": "In welcher Ebene liegt dieses Bild?",
        "region_q": "Welche Körperregion zeigt dieses Bild?",
        "sex_q": "Welches Geschlecht hat der Patient?",
        "sex": {"M": "männlich", "F": "weiblich", "O": "divers"},
        "age_q": "Wie alt ist der Patient (in Jahren)?",
        "contrast_q": "Wurde Kontrastmittel gegeben?",
    },
}
# DICOM BodyPartExamined defined terms -> (German, English) answers.
BODY_PARTS = {
    "ABDOMEN": ("Abdomen", "abdomen"),
    "CHEST": ("Thorax", "chest"),
    "THORAX": ("Thorax", "chest"),
    "CHESTABDOMEN": ("Thorax und Abdomen", "chest and abdomen"),
    "ABDOMENPELVIS": ("Abdomen und Becken", "abdomen and pelvis"),
    "CHESTABDOMENPELVIS": ("Thorax, Abdomen und Becken", "chest, abdomen and pelvis"),
    "PELVIS": ("Becken", "pelvis"),
    "HEAD": ("Kopf", "head"),
    "BRAIN": ("Gehirn", "brain"),
    "NECK": ("Hals", "neck"),
    "HEADNECK": ("Kopf und Hals", "head and neck"),
    "SPINE": ("Wirbelsäule", "spine"),
    "LSPINE": ("Lendenwirbelsäule", "lumbar spine"),
    "TSPINE": ("Brustwirbelsäule", "thoracic spine"),
    "CSPINE": ("Halswirbelsäule", "cervical spine"),
    "WHOLEBODY": ("Ganzkörper", "whole body"),
}
PLANE_ANSWER = {
    "en": {"axial": "axial", "coronal": "coronal", "sagittal": "sagittal"},
    "de": {"axial": "axial", "coronal": "koronar", "sagittal": "sagittal"},
}


def rank(seed: str, items: list[str]) -> list[str]:
    """A deterministic pseudo-random order (stable across runs and machines)."""
    return sorted(items, key=lambda s: hashlib.sha256(f"{seed}|{s}".encode()).hexdigest())
