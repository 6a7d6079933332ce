"""The method registry: every built-in method, by ``method.name``, in one table."""
from __future__ import annotations

from selfsup.core.registry import Registry

METHODS = Registry("method", {
    "barlow-twins": "selfsup.methods.barlow_twins:BarlowTwins",
    "byol": "selfsup.methods.byol:BYOL",
    "contextssl": "selfsup.methods.contextssl:ContextSSL",
    "dino": "selfsup.methods.dino:DINO",
    "simclr-pairs": "selfsup.methods.contextssl:PairSimCLR",
    "exemplar": "selfsup.methods.exemplar:Exemplar",
    "jigsaw": "selfsup.methods.jigsaw:Jigsaw",
    "mae": "selfsup.methods.mae:MAE",
    "moco": "selfsup.methods.moco:MoCo",
    "mocov3": "selfsup.methods.mocov3:MoCoV3",
    "nnclr": "selfsup.methods.nnclr:NNCLR",
    "relative-patch": "selfsup.methods.relative_patch:RelativePatch",
    "rotnet": "selfsup.methods.rotnet:RotNet",
    "simclr": "selfsup.methods.simclr:SimCLR",
    "simper": "selfsup.methods.simper:SimPer",
    "simsiam": "selfsup.methods.simsiam:SimSiam",
    "supcon": "selfsup.methods.supcon:SupCon",
    "supcon-moco": "selfsup.methods.supcon_moco:SupConMoCo",
    "swav": "selfsup.methods.swav:SwAV",
    "vicreg": "selfsup.methods.vicreg:VICReg",
})
