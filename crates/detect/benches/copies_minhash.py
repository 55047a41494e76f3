"""MinHash LSH reference (datasketch) on the texts `copies_pairs` wrote: the same feature
sets, scored against the same exact-Jaccard pairs. Run after the Rust bench:

    cargo bench -p levee-detect --bench copies_pairs
    pip install datasketch
    python3 crates/detect/benches/copies_minhash.py target/tmp/copies_pairs
"""
import json
import struct
import sys
import time

from datasketch import MinHash, MinHashLSH

d = sys.argv[1] if len(sys.argv) > 1 else "target/tmp/copies_pairs"
feats = [json.loads(l) for l in open(f"{d}/features.jsonl")]
pairs = json.load(open(f"{d}/pairs.json"))
truth = {tuple(p) for p in pairs["truth"]}
levee = {tuple(p) for p in pairs["levee"]}
hit = len(levee & truth)
print(f"{len(feats)} texts, {len(truth)} exact pairs; levee recall {hit / len(truth):.3f} precision {hit / max(1, len(levee)):.3f}")

t0 = time.perf_counter()
sigs = []
for f in feats:
    m = MinHash(num_perm=128)
    m.update_batch([struct.pack("<Q", x) for x in f])
    sigs.append(m)
sig_secs = time.perf_counter() - t0
for threshold in (0.5, 0.6, 0.7, 0.75, 0.8):
    t1 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    found = set()
    for i, m in enumerate(sigs):
        for j in lsh.query(m):
            # Verify a candidate by its estimated Jaccard, as a MinHash pipeline would.
            if m.jaccard(sigs[j]) >= 0.5:
                found.add((j, i))
        lsh.insert(i, m)
    secs = sig_secs + time.perf_counter() - t1
    ok = len(found & truth)
    print(
        f"minhash lsh threshold {threshold}: {len(found)} pairs, recall {ok / len(truth):.3f}, "
        f"precision {ok / max(1, len(found)):.3f}, {len(feats) / secs:.0f} texts/s (signatures + index)"
    )
