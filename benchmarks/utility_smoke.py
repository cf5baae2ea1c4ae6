import json, time, torch
torch.set_num_threads(1)
from medcloak.synth import generate
from medcloak.study.grid import GridConfig as G, utility_grid, default_vae_settings
from medcloak.learn.recipe import Recipe
t0 = time.time()
data = generate(384, size=64, seed=0, frames_per_patient=4, progress=False)
cfgs = [G("original"), G("map-only", 256), G("map-only", 64), G("map-only", 16),
        G("vae-then-map", 256, "vae-b1e-3"), G("vae-then-map", 64, "vae-b1e-3"), G("vae-then-map", 16, "vae-b1e-3"),
        G("map-only", 256, input_mode="level-embedding"), G("vae-then-map", 256, "vae-b1e-3", input_mode="level-embedding"),
        G("vae-then-map", 16, "vae-b1e-3", input_mode="level-embedding")]
vae = {"vae-b1e-3": default_vae_settings(epochs=8)["vae-b1e-3"]}
rows = utility_grid(data, seed=0, recipe=Recipe(max_epochs=10, patience=4), configs=cfgs, vae_settings=vae,
                    n_boot=500, progress=False,
                    callback=lambda r: print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}), flush=True))
print("total s", time.time() - t0)
