"""Reading the user's inputs: walking input folders and zip archives (``walk``), reading
DICOM headers only (``dicom_header``) and report tables (``report_table``).

Files are identified by keyed ids, never by their paths. May import ``engine`` (records) and
``deid.pseudo`` (keyed hashes); nothing downstream of ingest.
"""
