import sys, time, json, dataclasses
import numpy as np, torch
torch.set_num_threads(1)
from medcloak import synth, metrics
from medcloak.attacks.reconstruction import MapScheme, MedcloakScheme, attacker_key
from medcloak.attacks.direct_view import train_direct_view, score_direct_view
from medcloak.attacks.handmade import handmade_vessel_masks
from medcloak.attacks import prior
from medcloak.attacks.unet import NetConfig

size = int(sys.argv[1]); setting = sys.argv[2]; steps = int(sys.argv[3]); nat = int(sys.argv[4])
chans = tuple(int(c) for c in (sys.argv[5] if len(sys.argv) > 5 else "16,32,64").split(","))
vae_epochs = int(sys.argv[6]) if len(sys.argv) > 6 else 20
t = time.perf_counter()
v = synth.generate(96, size=size, seed=0)
a = synth.generate(nat, size=size, seed=7919)
print("gen", round(time.perf_counter()-t,1), "s", flush=True)
if setting.startswith("map"):
    L = int(setting[3:]); scheme = MapScheme(levels=L)
    vobf = scheme.fit(v.frames, seed=123)(v.frames, 0)
else:
    from medcloak.obfuscation.pipeline import ObfuscationConfig
    from medcloak.obfuscation.vae import VAEConfig
    from medcloak.keys import Key
    L = int(setting[3:])
    cfg = ObfuscationConfig(levels=L, vae=VAEConfig(epochs=vae_epochs))
    scheme = MedcloakScheme(cfg)
    vtrain = synth.generate(192, size=size, seed=5)
    tt = time.perf_counter()
    vo = scheme.fit(vtrain.frames, seed=999, progress=False)
    print("victim vae fit", round(time.perf_counter()-tt,1), flush=True)
    vobf = vo(v.frames, 0)
net = NetConfig(channels=chans, steps=steps, lr=3e-3, batch_size=16)
tt = time.perf_counter()
import os
dv = train_direct_view(scheme, a.frames, a.masks, net=net, seed=7919, progress=False, eval_every=50, patience=6, features=os.environ.get("FEAT","bands"), copies=int(os.environ.get("COPIES","2")))
ttrain = time.perf_counter()-tt
sc = score_direct_view(dv, vobf, v.masks)
pri = metrics.vessel_dice(prior.prior_segmentation(prior.mean_frame(a.frames), len(v.masks)), v.masks)
hm = {k: round(metrics.vessel_dice(m, v.masks),3) for k, m in handmade_vessel_masks(vobf).items()}
ceiling = metrics.vessel_dice(metrics.vessel_map(v.frames), v.masks)
out = dict(size=size, setting=setting, chans=chans, train_s=round(ttrain,1), victim=sc, heldout=dv.report(), prior=pri, handmade=hm, ceiling=ceiling)
print(json.dumps(out, default=float))
