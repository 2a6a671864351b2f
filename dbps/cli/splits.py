"""`dbps splits`: patient-grouped, label-stratified k-fold splits as CLAM `splits_{k}.csv`, checked for leakage."""

from __future__ import annotations

import argparse
from pathlib import Path

from dbps.cli.args import fold_count, non_negative_int


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="make k-fold splits (CLAM splits_k.csv) grouped by patient", description=__doc__)
    parser.add_argument("labels", type=Path, metavar="LABELS_CSV",
                        help="CLAM case_id,slide_id,label (or slide_name,label)")
    parser.add_argument("--folds", type=fold_count, default=5, help="k (default 5): fold k is split k's test set")
    parser.add_argument("--out", type=Path, required=True,
                        help="writes OUT/splits_{k}.csv and splits_{k}_descriptor.csv")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the fold assignment (default 0)")
    parser.add_argument("--no-val", action="store_true", help="no validation column (default: fold k+1 validates)")
    parser.add_argument("--force", action="store_true", help="replace split files already in OUT")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbps.files import check_output_folder
    from dbps.wsi.folds import make_splits, read_patients
    from dbps.wsi.tables import read_splits

    check_output_folder(args.out, "--out")
    existing = sorted(args.out.glob("splits_*.csv")) if args.out.is_dir() else []
    if existing and not args.force:
        raise FileExistsError(f"{args.out} already holds {existing[0].name}; pass --force to replace its split files")
    written = make_splits(args.labels, args.out, args.folds, args.seed, validation=not args.no_val)
    patients = read_patients(args.labels)
    for path in written:
        split = read_splits(path)
        counts = ", ".join(f"{name} {len(ids)} slides / {len({patients[s] for s in ids})} patients"
                           for name, ids in split.items() if ids)
        print(f"{path}: {counts}")
    print(f"{len(written)} folds, no patient in two sets of a split; train them with `dbps cv --splits {args.out}`")
    return 0
