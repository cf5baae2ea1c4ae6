"""Semi-synthetic X-ray coronary angiography (LCA/RCA, stenosis, vessel masks).

3-D centreline trees (:mod:`.centerlines`) are moved by cardiac motion, projected by a C-arm
(:mod:`.projection`) over X-ray backgrounds (:mod:`.background`) and rendered with
Beer-Lambert contrast, quantum noise and detector blur (:mod:`.render`).
"""

from medcloak.synth.generate import generate
from medcloak.synth.grid import make_grid
from medcloak.synth.write import write_synth

__all__ = ["generate", "make_grid", "write_synth"]
