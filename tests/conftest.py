import os

# Tests run on 2-core machines next to other work: one thread each keeps timings predictable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
