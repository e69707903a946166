"""From records to a training set: exports in the formats trainers read, stratified group-aware splits, balance
against targets, and a dataset card.

    runs      the run directories of one dataset, read shard by shard in a fixed order
    index     an on-disk (SQLite) index of every record: compaction by id, groups, caps, split assignment
    kinds     how each task kind's sample reads as training data (one entry per kind)
    formats   the row shapes trainers read (OpenAI chat, TRL, Alpaca, ShareGPT, DPO, text) and their containers
    sinks     JSONL, Parquet and HF DatasetDict writers, one file per split, streamed
    splits    split sizes (fractions or counts) and the seeded, stratified, group-aware assignment
    export    the whole export: index pass, assignment, write pass, lineage side file, export.json
    balance   accepted records per category against targets; caps; top-up plans for thin categories
    stats     what a card reports, gathered in one pass; diversity its embedding and n-gram measures
    plots     the card's PNGs (matplotlib, Agg);  card: README.md with HF-style front matter
"""
