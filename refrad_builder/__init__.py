"""refrad_builder: clinical CT/MR DICOM studies and their reports in, a de-identified,
bilingual, spatially grounded 2D training corpus (WebDataset shards) out.

Sub-packages: ``engine`` (config, records, stage contract, runner, ledger), ``inputs`` (walking
inputs, headers, report tables), ``deid``, ``imaging``, ``reports``, ``anatomy`` (the label
schema), ``text`` (captions, VQA, grounding; rules or an LLM), ``publish`` (shards, card,
preview, validation, exports), ``train`` (the trainer), ``demo``, ``stages``; ``cli`` is the
``refrad`` command.
"""
