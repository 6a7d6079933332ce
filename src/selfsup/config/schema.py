"""Typed configuration of a run. Recipes (YAML) and ``key=value`` overrides fill these dataclasses.

``method`` and ``trainer`` are open sections: ``method.*`` is validated against the chosen
method's own parameter dataclass (see ``selfsup.methods``), ``trainer.*`` against the arguments
of ``lightning.Trainer`` (see ``selfsup.engine``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class DataConfig:
    name: str = "fashion-mnist"
    root: Optional[str] = None  # explicit data location; else $SELFSUP_DATA, then system packages
    download: bool = False  # allow the dataset's official download (never without this)
    limit: Optional[int] = None  # seeded, class-stratified subset of N training samples
    val_fraction: float = 0.05  # seeded validation split carved from train (online probe, tuning)
    test_fraction: float = 0.2  # held-out fraction for datasets that ship no test split
    labelled_fraction: Optional[float] = None  # keep labels on this class-balanced fraction only
    skip_bad: bool = False  # skip (and count) unreadable files instead of failing
    labels: Optional[str] = None  # image-folder: CSV path,label (relative paths; empty label = unlabelled)
    targets: Optional[str] = None  # signals: CSV, one column per target; video-folder: CSV path + target columns
    image_size: Optional[int] = None  # short side resized, centre-cropped; None: native if all <= 64 px, one size; else 224
    batch_size: int = 256
    num_workers: Optional[int] = None  # loader processes; None = cores - 1 (at most 8) for file datasets, else 0
    # sequence datasets (clips, signals); None = the dataset's own default
    fps: Optional[float] = None  # clips: frames per second (video-folder: sampled at); signals: samples per second
    seconds: Optional[float] = None  # duration of each clip / signal window
    freq_range: List[float] = field(default_factory=lambda: [0.5, 5.0])  # rotating-digits: frequencies, Hz


@dataclass
class ModelConfig:
    encoder: str = "convnet-small"  # a name in selfsup.models.ENCODERS, or timm:<name>
    cifar_stem: Optional[bool] = None  # ResNets: 3x3 stem, no max-pool; None = auto (images <= 64 px)
    width: int = 32  # base width of the small ConvNets
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU and GPU
    patch_size: Optional[int] = None  # ViTs: patch side in pixels; None = from the image size (models.vit.auto_patch_size)
    vit_registers: int = 0  # ViTs: register tokens beside the class token (Darcet et al., ICLR 2024)
    compile: bool = False  # torch.compile the method's networks (encoder, heads) in place
    # BatchNorm statistics over the global batch under DDP (Lightning's sync_batchnorm); None = on for the
    # methods whose BN statistics carry the signal (Method.global_batchnorm) when several CUDA processes train
    sync_batchnorm: Optional[bool] = None
    # start from weights on disk, never a download: a selfsup run folder, an encoder.safetensors, or a
    # plain PyTorch / torchvision / timm state dict (torch.load(weights_only=True)); see
    # selfsup.models.init_weights. None = the seeded random init (the random_init baseline always is)
    init: Optional[str] = None


@dataclass
class AugmentConfig:
    """SimCLR views (Chen et al. 2020, appendix A): CIFAR-scale colour strength 0.5.

    Per-view settings: entry i of ``view_blur_prob`` / ``view_solarize_prob`` is the blur /
    solarisation probability of view i (in the order the views come out; multi-crop: the global
    crops first); views past the end of the list, and every view when it is None, use the shared
    ``blur_prob`` / ``solarize_prob``. BYOL's asymmetric views (Grill et al. 2020): [1.0, 0.1]
    and [0.0, 0.2]. Multi-crop (Caron et al. 2020, 2021; ``selfsup.augment.MultiCropViews``):
    ``num_global_crops`` crops of ``global_crop_scale`` resized to ``global_crop_size``, then
    ``num_local_crops`` of ``local_crop_scale`` resized to ``local_crop_size``; those views use
    neither ``num_views`` nor ``crop_scale``."""

    num_views: int = 2
    crop_scale: List[float] = field(default_factory=lambda: [0.08, 1.0])
    crop_ratio: List[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    hflip_prob: float = 0.5
    jitter_prob: float = 0.8
    jitter_strength: float = 0.5  # brightness/contrast/saturation 0.8*s, hue 0.2*s
    grayscale_prob: float = 0.2  # colour images only
    blur_prob: float = 0.5
    blur_sigma: List[float] = field(default_factory=lambda: [0.1, 2.0])
    solarize_prob: float = 0.0  # x -> 1 - x where x >= 0.5, per sample with this probability (BYOL)
    view_blur_prob: Optional[List[float]] = None  # per-view blur_prob (see above); None = shared
    view_solarize_prob: Optional[List[float]] = None  # per-view solarize_prob (see above); None = shared
    num_global_crops: int = 2  # multi-crop: full-size crops (the teacher's / the codes' views)
    global_crop_size: Optional[int] = None  # square side in pixels; None = the input's size
    global_crop_scale: List[float] = field(default_factory=lambda: [0.4, 1.0])  # DINO's; SwAV's [0.14, 1.0]
    num_local_crops: int = 0  # multi-crop: small crops (DINO 8-10, SwAV 6)
    local_crop_size: Optional[int] = None  # square side in pixels; None = round(input side * 96 / 224)
    local_crop_scale: List[float] = field(default_factory=lambda: [0.05, 0.4])  # DINO's; SwAV's [0.05, 0.14]


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | lars | adamw
    lr: float = 0.3
    momentum: float = 0.9
    weight_decay: float = 1e-6
    weight_decay_end: Optional[float] = None  # cosine from weight_decay to this over training (DINO 0.04 -> 0.4)
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # adamw only
    trust_coefficient: float = 0.001  # lars only
    warmup_epochs: float = 0.0  # linear warm-up, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.0
    probe_lr: Optional[float] = None  # online linear probe; None = 0.1 (sgd/lars) or 1e-3 (adamw)
    lr_scales: Dict[str, float] = field(default_factory=dict)  # lr multipliers by module name, e.g. predictor: 10
    # optim.lr is for a world batch of 256 (batch_size x devices x num_nodes): none (as given) | linear
    # (x world/256, Goyal et al. 2017) | sqrt (x sqrt(world/256), for LARS/AdamW at large batches)
    lr_scaling: str = "none"


LAYER_POOLINGS = ("adaptive-max", "global-avg")  # eval.layer_pooling's names (selfsup.eval.layers)


@dataclass
class EvalConfig:
    after_train: bool = True  # every `selfsup train` ends by evaluating the run
    limit: Optional[int] = None  # cap the kNN bank and the test set (seeded, stratified)
    knn_k: int = 200  # capped at bank size - 1
    knn_temperature: float = 0.1
    batch_size: int = 1024
    baselines: bool = True  # random-init encoder and raw pixels beside the trained encoder
    map_points: int = 2000  # test points in the 2-D embedding map (0 = no map)
    online_knn_samples: int = 2000  # labelled pre-training samples in the online kNN monitor's bank (0 = off)
    # per-layer probing (--layers), comma-separated: adaptive-max (each stage max-pooled to a grid of
    # about layer_features features, Kolesnikov et al. 2019) and / or global-avg (C features per stage)
    layer_pooling: str = "adaptive-max,global-avg"
    layer_features: int = 9000  # adaptive-max: the target of C x h x w per stage (the paper's ~9,000)


@dataclass
class RunConfig:
    dir: Optional[str] = None  # the run folder itself; default ./runs/<recipe>-<timestamp>
    # experiment loggers: csv (metrics.csv, always useful), tensorboard, wandb (offline unless
    # WANDB_MODE says otherwise), mlflow (a local file: store in the run unless MLFLOW_TRACKING_URI)
    loggers: List[str] = field(default_factory=lambda: ["csv"])
    history: List[str] = field(default_factory=list)  # written by selfsup: each resume and its overrides


@dataclass
class Config:
    recipe: str = "simclr-fashion-mnist"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    method: Dict[str, Any] = field(default_factory=lambda: {"name": "simclr"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: Dict[str, Any] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)
