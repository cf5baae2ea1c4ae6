"""DICOM header de-identification (PS3.15 Annex E, Basic Application Level Confidentiality Profile).

The attribute table and its actions (D replace with dummy, Z empty, X remove, U new UID, and the
combined X/Z, X/D, X/Z/D, X/Z/U* actions) come from the ``dicom-anonymizer`` package, which ships
Table E.1-1 of the standard (``dicomfields_2026c``); we do not keep our own tag list. Two of its
behaviours are replaced:

* **UIDs** are not drawn at random. Every UID that is not a well-known registry UID (SOP classes,
  transfer syntaxes, coding schemes: anything in pydicom's UID dictionary) is mapped by a
  :class:`UIDMapper`, keyed by a secret salt, so the same original UID always gets the same new
  UID: all frames and series of a study stay consistent across files and runs. This covers UIDs
  nested in sequences and the file meta ``MediaStorageSOPInstanceUID`` too.
* Private tags are removed (the profile's default, no "retain private" option).

Then ``PatientIdentityRemoved = YES`` and ``DeidentificationMethod`` are set, and
``DeidentificationMethodCodeSequence`` names the basic profile (CID 7050, code 113100).

Why not ``deid``'s default recipe: measured on a header with the profile's attributes, it keeps
InstitutionName, StationName, PatientSex, PatientAge and StudyDescription, among others (it is a
site recipe for Stanford, not the PS3.15 table), and it adds site values (IssuerOfPatientID).

Out of scope: burned-in text in the pixels, overlays flagged as burned-in annotation, the
"Retain ..." profile options (dates, device identity, longitudinal), and cleaning free text of
attributes the profile keeps.
"""

from __future__ import annotations

import copy
import hashlib

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, generate_uid

from medcloak.errors import MedcloakError

__all__ = ["UIDMapper", "deidentify", "DEID_METHOD", "PROFILE_TABLE"]

#: Written to DeidentificationMethod (0012,0063).
DEID_METHOD = "PS3.15 E.1-1 Basic Profile (medcloak; dicom-anonymizer table)"
#: Version of PS3.15 Table E.1-1 used, as named by dicom-anonymizer.
PROFILE_TABLE = "dicomfields_2026c"


class UIDMapper:
    """Map original DICOM UIDs to new ones, deterministically, under a secret salt.

    ``map(uid)`` is ``pydicom.uid.generate_uid(entropy_srcs=[salt.hex(), uid])``: a UID under
    pydicom's root derived from SHA-512 of the salt and the original, so one salt gives one consistent
    mapping for every file of a study (and every run), and without the salt the mapping can
    neither be inverted nor linked to another owner's.

    Parameters
    ----------
    salt : bytes
        At least 16 bytes of secret; in medcloak it is an HKDF sub-key of the owner's key.

    Examples
    --------
    >>> m = UIDMapper(b"0" * 16)
    >>> m.map("1.2.3") == m.map("1.2.3") != m.map("1.2.4")
    True
    >>> m.map("1.2.3").startswith("1.2.826.0.1.3680043.8.498.")
    True
    """

    def __init__(self, salt: bytes):
        if not isinstance(salt, (bytes, bytearray)) or len(salt) < 16:
            raise MedcloakError("UIDMapper salt must be at least 16 bytes")
        self._salt_hex = bytes(salt).hex()
        self._cache: dict[str, str] = {}

    def map(self, uid: str) -> str:
        """The new UID for an original ``uid`` (same input, same output)."""
        uid = str(uid).strip().rstrip("\x00")
        new = self._cache.get(uid)
        if new is None:
            new = str(generate_uid(entropy_srcs=[self._salt_hex, uid]))
            self._cache[uid] = new
        return new

    def derive(self, *parts: str) -> str:
        """A new UID for a derived object named by ``parts`` (e.g. a new series of one study).

        Distinct from :meth:`map` of any single UID: the parts are prefixed with ``"derive"``.
        """
        return str(generate_uid(entropy_srcs=[self._salt_hex, "derive", *map(str, parts)]))

    def fingerprint(self) -> str:
        """Short non-secret identifier of the salt (first 8 hex digits of its SHA-256)."""
        return hashlib.sha256(bytes.fromhex(self._salt_hex)).hexdigest()[:8]


def _is_registry_uid(value: str) -> bool:
    """True for UIDs defined by the standard (SOP classes, transfer syntaxes, ...)."""
    try:
        return UID(value).name != value  # pydicom names only the UIDs it knows from the registry
    except Exception:
        return False


def _remap_uids(ds: Dataset, mapper: UIDMapper) -> None:
    def callback(dataset: Dataset, elem) -> None:
        if elem.VR != "UI" or elem.value in (None, ""):
            return
        if isinstance(elem.value, MultiValue) or isinstance(elem.value, list):
            elem.value = [v if (not v or _is_registry_uid(v)) else mapper.map(v) for v in elem.value]
        elif not _is_registry_uid(str(elem.value)):
            elem.value = mapper.map(str(elem.value))

    ds.walk(callback, recursive=True)


def _keep(dataset, tag):  # an action with dicom-anonymizer's signature that leaves the element
    return None


def deidentify(ds: Dataset, *, uid_mapper: UIDMapper) -> Dataset:
    """Return a de-identified copy of ``ds`` (the input is not modified).

    Parameters
    ----------
    ds : pydicom.Dataset
        A header (pixel data may be present; it is not touched, nor checked for burned-in text).
    uid_mapper : UIDMapper
        Gives the new UIDs; use one mapper (one salt) for all files of a study.

    Returns
    -------
    pydicom.Dataset
        Attributes of PS3.15 Table E.1-1 removed, emptied or replaced with dummies; private tags
        removed; UIDs mapped; ``PatientIdentityRemoved`` = ``YES``; ``DeidentificationMethod``
        set. Type-2 attributes the profile empties (PatientName, PatientID, StudyDate, ...) stay
        present with empty values.
    """
    from dicomanonymizer.simpledicomanonymizer import anonymize_dataset, initialize_actions

    if not isinstance(ds, Dataset):
        raise MedcloakError(f"deidentify needs a pydicom Dataset, got {type(ds).__name__}")
    out = copy.deepcopy(ds)

    def rules() -> dict:
        actions = initialize_actions(PROFILE_TABLE)
        # UIDs: leave them for our deterministic mapper (dicom-anonymizer's are random per process)
        from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

        for tag in dicom_anonymization_database_selector(PROFILE_TABLE)["U_TAGS"]:
            actions[tag] = _keep
        return actions

    try:
        anonymize_dataset(out, delete_private_tags=True, base_rules_gen=rules)
        out.remove_private_tags()
        if hasattr(out, "file_meta"):
            out.file_meta.remove_private_tags()
        _remap_uids(out, uid_mapper)
        if hasattr(out, "file_meta"):
            _remap_uids(out.file_meta, uid_mapper)
            if "SOPInstanceUID" in out:
                out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    except MedcloakError:
        raise
    except Exception as exc:  # a malformed header element the anonymizer cannot rewrite
        src = getattr(ds, "filename", None)
        raise MedcloakError(f"cannot de-identify header ({exc.__class__.__name__}: {exc})",
                            src if isinstance(src, str) else None) from None
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = DEID_METHOD
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    out.DeidentificationMethodCodeSequence = [code]
    return out
