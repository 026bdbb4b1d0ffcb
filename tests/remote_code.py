"""Test helper: the start of a script for a fresh interpreter in which `import hf_multinomial` fails, so that only the
files saved or pushed with a model are used (the trust_remote_code route)."""

BLOCK_HF_MULTINOMIAL = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "hf_multinomial":
            raise ImportError("hf_multinomial is blocked in this test")
sys.meta_path.insert(0, Block())
try:
    import hf_multinomial
    raise SystemExit("hf_multinomial importable")
except ImportError:
    pass
"""
