"""Feature extractors for SB3 policies, and the choice of one from an observation space.

* :class:`ImpalaCNN`: the IMPALA network (Espeholt et al. 2018) as used in the Procgen
  paper: three stacks (16, 32, 32 channels) of conv + max-pool + two residual blocks,
  then a 256-unit ReLU layer. Input is channel-first; SB3 transposes HWC uint8 images
  (``VecTransposeImage``) and divides them by 255 before the extractor sees them.
* :class:`MiniGridCNN`: the small CNN for MiniGrid's 7x7 symbolic view (three 2x2
  convolutions with a max-pool after the first, then a 128-unit layer), for float
  channel-first boxes that SB3 neither transposes nor rescales.
* :class:`SlotAttentionExtractor`: a goal-conditioned, permutation-invariant encoder for
  object-slot observations (a Dict of ``slots``, ``mask`` and ``goal``), in the spirit of
  the OCRL benchmark's slot-set policies (Yoon et al. 2023): a shared per-slot MLP
  (optionally a self-attention layer over the real slots), then masked multi-head
  attention pooling whose queries are derived from the goal.
* :class:`GoalFiLMCNN`: the pixel counterpart of the slot extractor for a Dict of one image
  and a ``goal`` vector: a small CNN whose every conv layer is modulated by the goal
  (FiLM, Perez et al. 2018), over the image plus two coordinate channels (CoordConv), so
  "where is the object the goal names" is computed in the image, not after flattening.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Self, cast

import gymnasium
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, preprocess_obs
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
)
from torch import nn

from gengap.agents.online import policy_observation_space
from gengap.core.errors import InputError, unknown_name_message


def _channel_first_shape(observation_space: gymnasium.Space[Any], name: str) -> tuple[int, ...]:
    shape = getattr(observation_space, "shape", None)
    if not isinstance(observation_space, spaces.Box) or shape is None or len(shape) != 3:
        raise InputError(
            f"{name} needs a 3-D (C, H, W) Box observation space, got {observation_space}"
        )
    return tuple(shape)


class ResidualBlock(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv0(torch.relu(x))
        out = self.conv1(torch.relu(out))
        return x + out


class ImpalaStack(nn.Module):
    """conv3x3 -> max-pool 3x3 stride 2 -> two residual blocks."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.res0 = ResidualBlock(out_channels)
        self.res1 = ResidualBlock(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res1(self.res0(self.pool(self.conv(x))))


class ImpalaCNN(BaseFeaturesExtractor):
    """IMPALA CNN feature extractor (Procgen paper network).

    Args:
        observation_space: A channel-first image Box (C, H, W).
        features_dim: Units of the final ReLU layer (256 in the Procgen paper).
        depths: Channels of each conv stack.
    """

    def __init__(
        self,
        observation_space: gymnasium.Space[Any],
        features_dim: int = 256,
        depths: Sequence[int] = (16, 32, 32),
    ) -> None:
        shape = _channel_first_shape(observation_space, "ImpalaCNN")
        super().__init__(observation_space, features_dim)
        stacks: list[nn.Module] = []
        channels = shape[0]
        for depth in depths:
            stacks.append(ImpalaStack(channels, depth))
            channels = depth
        self.stacks = nn.Sequential(*stacks, nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            n_flat = self.stacks(torch.zeros(1, *shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.head(self.stacks(observations))


class MiniGridCNN(BaseFeaturesExtractor):
    """Small CNN for MiniGrid's partial view (rl-starter-files' ``image_conv`` plus a layer).

    Args:
        observation_space: A channel-first Box (C, H, W), H and W at least 6.
        features_dim: Units of the final ReLU layer.
    """

    def __init__(self, observation_space: gymnasium.Space[Any], features_dim: int = 128) -> None:
        shape = _channel_first_shape(observation_space, "MiniGridCNN")
        if min(shape[1:]) < 6:
            raise InputError(f"MiniGridCNN needs H and W >= 6, got observation shape {shape}")
        super().__init__(observation_space, features_dim)
        self.convs = nn.Sequential(
            nn.Conv2d(shape[0], 16, kernel_size=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2),
            nn.Conv2d(16, 32, kernel_size=2),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, *shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(observations))


class SlotAttentionExtractor(BaseFeaturesExtractor):
    """Goal-conditioned attention pooling over a padded set of object slots.

    Every slot row goes through the same MLP; optionally one self-attention layer lets the
    slots see each other (off by default: it triples the cost and did not speed up
    learning on the shapes world's object goal task); then
    ``num_queries`` queries computed from the goal attend over the slots (padding rows,
    ``mask == 0``, are excluded, and a learned always-present "null" slot lets a query
    find nothing). The pooled vectors and the goal embedding go through a ReLU layer. The
    features do not depend on the order of the slots nor on the content of padding rows.

    Args:
        observation_space: A Dict with ``slots`` ``(N, D)``, ``mask`` ``(N,)`` and ``goal``
            ``(G,)`` Boxes (the shapes world's slot mode).
        features_dim: Units of the final ReLU layer.
        embed_dim: Width of slot and goal embeddings (divisible by ``num_heads``).
        num_heads: Attention heads.
        num_queries: Goal-derived pooling queries (e.g. one finds the goal object, one
            the agent).
        self_attention: Add a residual self-attention layer over the slots before pooling.

    Raises:
        InputError: If the space lacks those keys or shapes, or ``embed_dim`` is not
            divisible by ``num_heads``.
    """

    def __init__(
        self,
        observation_space: gymnasium.Space[Any],
        features_dim: int = 128,
        embed_dim: int = 64,
        num_heads: int = 4,
        num_queries: int = 2,
        self_attention: bool = False,
    ) -> None:
        keys = ("slots", "mask", "goal")
        if not isinstance(observation_space, spaces.Dict) or any(
            k not in observation_space.spaces for k in keys
        ):
            raise InputError(
                f"SlotAttentionExtractor needs a Dict space with keys {keys}, "
                f"got {observation_space}"
            )
        slot_shape = observation_space["slots"].shape
        mask_shape = observation_space["mask"].shape
        goal_shape = observation_space["goal"].shape
        if (
            slot_shape is None
            or len(slot_shape) != 2
            or mask_shape != slot_shape[:1]
            or goal_shape is None
            or len(goal_shape) != 1
        ):
            raise InputError(
                "SlotAttentionExtractor needs slots (N, D), mask (N,) and goal (G,), got "
                f"slots {slot_shape}, mask {mask_shape}, goal {goal_shape}"
            )
        if embed_dim % num_heads:
            raise InputError(
                f"embed_dim must be divisible by num_heads={num_heads}, got {embed_dim}"
            )
        super().__init__(observation_space, features_dim)
        self.num_queries = num_queries
        self.embed_dim = embed_dim
        self.slot_mlp = nn.Sequential(
            nn.Linear(slot_shape[1], embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim)
        )
        self.goal_mlp = nn.Sequential(nn.Linear(goal_shape[0], embed_dim), nn.ReLU())
        self.self_attention = (
            nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
            if self_attention
            else None
        )
        self.self_norm = nn.LayerNorm(embed_dim) if self_attention else None
        self.queries = nn.Linear(embed_dim, num_queries * embed_dim)
        self.null_slot = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pool = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
        self.head = nn.Sequential(nn.Linear((num_queries + 1) * embed_dim, features_dim), nn.ReLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        slots = self.slot_mlp(observations["slots"])
        padding = observations["mask"] < 0.5
        batch = slots.shape[0]
        # The null slot is never padding, so no query row is ever fully masked.
        null = self.null_slot.expand(batch, 1, self.embed_dim)
        keys = torch.cat([null, slots], dim=1)
        key_padding = torch.cat([torch.zeros_like(padding[:, :1]), padding], dim=1)
        if self.self_attention is not None and self.self_norm is not None:
            attended, _ = self.self_attention(
                keys, keys, keys, key_padding_mask=key_padding, need_weights=False
            )
            keys = self.self_norm(keys + attended)
        goal = self.goal_mlp(observations["goal"])
        queries = self.queries(goal).view(batch, self.num_queries, self.embed_dim)
        pooled, _ = self.pool(queries, keys, keys, key_padding_mask=key_padding, need_weights=False)
        return self.head(torch.cat([pooled.flatten(1), goal], dim=1))


def _flatten(maps: torch.Tensor) -> torch.Tensor:
    return maps.flatten(1)


def _spatial_max(maps: torch.Tensor) -> torch.Tensor:
    return maps.amax(dim=(2, 3))


# How GoalFiLMCNN turns its last feature maps (B, C, H, W) into a vector: name -> (function,
# its width from the maps' (C, H, W)).
SPATIAL_POOLINGS: dict[str, tuple[Any, Any]] = {
    "flatten": (_flatten, lambda c, h, w: c * h * w),
    "max": (_spatial_max, lambda c, h, w: c),
}


class GoalFiLMCNN(BaseFeaturesExtractor):
    """Goal-conditioned CNN for a Dict of one image and a ``goal`` vector.

    The image (channel-first, scaled to [0, 1] by SB3) gets two coordinate channels (x and
    y in [-1, 1]) and goes through 3x3 convolutions; after each, the channels are scaled
    and shifted by linear functions of the goal (FiLM), then ReLU. The last maps are
    pooled (flattened, or their maximum over space), go through a ReLU layer and are
    concatenated with a goal embedding. Why FiLM rather than SB3's combined extractor
    (NatureCNN + goal after flattening): matching a goal's colour and shape is a product
    of what the pixel shows and what the goal asks for; with the goal joined only after
    the CNN, the network must encode every object's colour, shape and position in the flat
    features first, and PPO on the shapes world stayed below a random policy at 200k steps.

    Args:
        observation_space: A Dict with a ``goal`` ``(G,)`` Box and exactly one other key,
            a 3-D image Box (channel-first, as the policy sees it).
        features_dim: Units of the layer after the convolutions (the features are these
            plus a 64-unit goal embedding).
        channels: Channels of the conv layers.
        strides: Stride of each conv layer.
        pooling: A name in :data:`SPATIAL_POOLINGS`.

    Raises:
        InputError: If the space is not such a Dict, ``strides`` and ``channels`` differ
            in length, or ``pooling`` is unknown.
    """

    coords: torch.Tensor

    def __init__(
        self,
        observation_space: gymnasium.Space[Any],
        features_dim: int = 256,
        channels: Sequence[int] = (16, 32, 32),
        strides: Sequence[int] = (2, 2, 2),
        pooling: str = "flatten",
    ) -> None:
        name = type(self).__name__
        image_key = _goal_image_key(observation_space)
        if image_key is None:
            raise InputError(
                f"{name} needs a Dict space of a 'goal' (G,) Box and one 3-D image Box, "
                f"got {observation_space}"
            )
        if len(strides) != len(channels):
            raise InputError(f"{name} needs one stride per conv layer: channels {channels}, "
                             f"strides {strides}")
        if pooling not in SPATIAL_POOLINGS:
            raise InputError(unknown_name_message("pooling", pooling, SPATIAL_POOLINGS))
        space = cast(spaces.Dict, observation_space)
        shape = _channel_first_shape(space[image_key], name)
        goal_dim = int(space["goal"].shape[0])  # type: ignore[index]
        super().__init__(observation_space, features_dim + 64)
        self.image_key = image_key
        height, width = shape[1:]
        ys = torch.linspace(-1.0, 1.0, height).view(1, 1, height, 1).expand(1, 1, height, width)
        xs = torch.linspace(-1.0, 1.0, width).view(1, 1, 1, width).expand(1, 1, height, width)
        self.register_buffer("coords", torch.cat([xs, ys], dim=1).contiguous(), persistent=False)
        convs: list[nn.Module] = []
        films: list[nn.Module] = []
        in_channels = shape[0] + 2
        for out_channels, stride in zip(channels, strides, strict=True):
            convs.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride,
                                   padding=1))
            films.append(nn.Linear(goal_dim, 2 * out_channels))
            in_channels = out_channels
        self.convs = nn.ModuleList(convs)
        self.films = nn.ModuleList(films)
        with torch.no_grad():
            probe = torch.zeros(1, shape[0] + 2, height, width)
            for conv in self.convs:
                probe = conv(probe)
        self.pool, pooled_width = SPATIAL_POOLINGS[pooling]
        self.head = nn.Sequential(
            nn.Linear(pooled_width(*probe.shape[1:]), features_dim), nn.ReLU())
        self.goal_mlp = nn.Sequential(nn.Linear(goal_dim, 64), nn.ReLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        image = observations[self.image_key]
        goal = observations["goal"]
        x = torch.cat([image, self.coords.expand(image.shape[0], -1, -1, -1)], dim=1)
        for conv, film in zip(self.convs, self.films, strict=True):
            x = conv(x)
            scale, shift = film(goal).chunk(2, dim=1)
            # 1 + scale: an untrained FiLM layer starts as the identity.
            x = torch.relu(x * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None])
        return torch.cat([self.head(self.pool(x)), self.goal_mlp(goal)], dim=1)


class GoalFiLMPoolCNN(GoalFiLMCNN):
    """:class:`GoalFiLMCNN` that keeps resolution and pools by a maximum over space.

    One stride-2 convolution, one at that resolution (32x32 for 64x64 frames) and one
    more stride-2 one (16, 16 and 32 channels, FiLM after each), then the maximum of each
    channel over space. Why: in the shapes world the answer is where the goal object is
    relative to the agent, an object a few pixels wide. Flattening a map of every
    position into a dense layer must learn that readout separately for each position;
    with the coordinate channels, a goal-gated channel's maximum over space *is* a
    coordinate of what the goal names, wherever it is. Behaviour cloning of the greedy
    oracle (studies/shapes_pixels_bc_check.py): held-out action accuracy 0.806 against
    0.587 for the flattening GoalFiLMCNN, at about the same cost per frame.

    Args:
        observation_space: As for :class:`GoalFiLMCNN`.
        features_dim: Units of the layer after the pooling (plus a 64-unit goal embedding).
        channels: Channels of the conv layers.
        strides: Stride of each conv layer.
    """

    def __init__(
        self,
        observation_space: gymnasium.Space[Any],
        features_dim: int = 256,
        channels: Sequence[int] = (16, 16, 32),
        strides: Sequence[int] = (2, 1, 2),
    ) -> None:
        super().__init__(observation_space, features_dim, channels, strides, pooling="max")


def _goal_image_key(observation_space: gymnasium.Space[Any]) -> str | None:
    """The image key of a Dict of ``goal`` (1-D Box) plus exactly one 3-D image Box."""
    if not isinstance(observation_space, spaces.Dict) or "goal" not in observation_space.spaces:
        return None
    goal = observation_space["goal"]
    others = [k for k in observation_space.spaces if k != "goal"]
    if not isinstance(goal, spaces.Box) or len(goal.shape) != 1 or len(others) != 1:
        return None
    image = observation_space[others[0]]
    if not isinstance(image, spaces.Box) or len(image.shape) != 3:
        return None
    return others[0]


# name -> (class, whether it takes ``features_dim``)
FEATURES_EXTRACTORS: dict[str, tuple[type[BaseFeaturesExtractor], bool]] = {
    "impala": (ImpalaCNN, True),
    "minigrid_cnn": (MiniGridCNN, True),
    "nature_cnn": (NatureCNN, True),
    "mlp": (FlattenExtractor, False),
    "combined": (CombinedExtractor, False),
    "slot_attention": (SlotAttentionExtractor, True),
    "goal_film_cnn": (GoalFiLMCNN, True),
    "goal_film_pool_cnn": (GoalFiLMPoolCNN, True),
}


def auto_features_extractor(observation_space: gymnasium.Space[Any]) -> str:
    """The extractor name for a space: Dict of ``slots``/``mask``/``goal`` -> slot_attention,
    Dict of one image and a ``goal`` -> goal_film_pool_cnn, other Dict -> combined, uint8 image
    -> impala, other 3-D Box -> minigrid_cnn, anything else -> mlp."""
    if isinstance(observation_space, spaces.Dict):
        if {"slots", "mask", "goal"} <= set(observation_space.spaces):
            return "slot_attention"
        if _goal_image_key(observation_space) is not None:
            return "goal_film_pool_cnn"
        return "combined"
    if isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 3:
        if is_image_space(observation_space, check_channels=False):
            return "impala"
        return "minigrid_cnn"
    return "mlp"


def resolve_auto_extractor(name: str, observation_space: gymnasium.Space[Any]) -> str:
    """``name``, or for ``"auto"`` the extractor it picks for the env's ``observation_space``
    (judged on the policy-side space, as :func:`features_extractor_kwargs` and
    :class:`ObservationEncoder` do)."""
    if name != "auto":
        return name
    return auto_features_extractor(policy_observation_space(observation_space))


class ExtractorChoice:
    """What every agent config with ``features_extractor`` and ``features_dim`` fields does
    with them: refuse an observation space the extractor does not fit, and write down what
    ``"auto"`` picks (SB3 agents and offline learners alike). Mixed into those configs ahead
    of :class:`~gengap.agents.base.AgentConfig`."""

    features_extractor: str
    features_dim: int | None

    def check_observation_space(
        self, observation_space: gymnasium.Space[Any], env_id: str | None = None
    ) -> None:
        """Refuse an observation space the features extractor does not fit (one line)."""
        check_features_extractor_fits(self.features_extractor, observation_space,
                                      self.features_dim, where=env_id or "the env")

    def resolved_for(self, observation_space: gymnasium.Space[Any]) -> Self:
        """The config with ``features_extractor="auto"`` replaced by its pick for the space."""
        name = resolve_auto_extractor(self.features_extractor, observation_space)
        if name == self.features_extractor:
            return self
        return cast(Self, dataclasses.replace(cast(Any, self), features_extractor=name))


def features_extractor_kwargs(
    name: str, observation_space: gymnasium.Space[Any], features_dim: int
) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` entries for extractor ``name`` (``"auto"`` picks from the space).

    Raises:
        InputError: For an unknown extractor name, with close matches.
    """
    if name == "auto":
        name = auto_features_extractor(observation_space)
    if name not in FEATURES_EXTRACTORS:
        raise InputError(
            unknown_name_message("features_extractor", name, [*FEATURES_EXTRACTORS, "auto"])
        )
    extractor_cls, takes_dim = FEATURES_EXTRACTORS[name]
    kwargs: dict[str, Any] = {"features_extractor_class": extractor_cls}
    if takes_dim:
        kwargs["features_extractor_kwargs"] = {"features_dim": features_dim}
    return kwargs


def check_features_extractor_fits(
    name: str,
    observation_space: gymnasium.Space[Any],
    features_dim: int | None = None,
    *,
    where: str = "the env",
) -> None:
    """Refuse up front, in one line, an observation space extractor ``name`` cannot encode.

    The extractor says what it needs: it is built once on the space the policy will see
    (channel-last images transposed, as SB3 does), so its own checks decide, and shape
    errors of its layers (a kernel larger than the image) count as a misfit too. Building
    one costs milliseconds and touches no files.

    Args:
        name: ``"auto"`` or a name in :data:`FEATURES_EXTRACTORS`.
        observation_space: The env's single observation space.
        features_dim: The extractor's output units (``None``: its default).
        where: What the space belongs to, for the message (e.g. the env id).

    Raises:
        InputError: For an unknown name, or a space the extractor does not fit, e.g.
            "gengap/minigrid-doorkey-5x5-v0 observations do not fit features extractor
            'minigrid_cnn': MiniGridCNN needs H and W >= 6, got observation shape (3, 5, 5)".
    """
    policy_space = policy_observation_space(observation_space)
    kwargs = features_extractor_kwargs(name, policy_space, features_dim or 0)
    extractor_cls = kwargs["features_extractor_class"]
    extractor_kwargs = kwargs.get("features_extractor_kwargs", {}) if features_dim else {}
    resolved = next(key for key, (cls, _) in FEATURES_EXTRACTORS.items() if cls is extractor_cls)
    try:
        extractor_cls(policy_space, **extractor_kwargs)
    # Third-party extractors check with assert (SB3's NatureCNN), and a layer that does not
    # fit the image fails in the extractor's probe forward pass with a RuntimeError.
    except (InputError, AssertionError, RuntimeError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise InputError(
            f"{where} observations do not fit features extractor {resolved!r}"
            f"{' (auto)' if name == 'auto' else ''}: {reason}; the agent option "
            f"features_extractor picks another ({', '.join(FEATURES_EXTRACTORS)})"
        ) from None


def _channels_first(
    obs: Any, space: gymnasium.Space[Any], policy_space: gymnasium.Space[Any]
) -> Any:
    if isinstance(space, spaces.Dict) and isinstance(policy_space, spaces.Dict):
        return {k: _channels_first(obs[k], space[k], policy_space[k]) for k in space.spaces}
    if space.shape != policy_space.shape:  # a channel-last image, as VecTransposeImage sees it
        return obs.permute(0, 3, 1, 2)
    return obs


class ObservationEncoder(nn.Module):
    """Observations as the env gives them -> features, through the online agents' extractors.

    Applies what SB3 applies before its extractor (channel-last images made channel-first,
    uint8 images divided by 255, Discrete values one-hot) and then builds the extractor that
    ``features_extractor`` names for the policy-side space, with the same "auto" choice
    as the online agents (:func:`features_extractor_kwargs`). Offline learners use it, so
    behaviour cloning, d3rlpy's offline RL and PPO/DQN see the same network and the same
    inputs. Observations arrive as float or uint8 tensors with a leading batch axis (a dict
    of them for Dict spaces); their values are the env's (0..255 for images).

    Args:
        observation_space: The env's single observation space.
        features_extractor: ``"auto"`` or a name in :data:`FEATURES_EXTRACTORS`.
        features_dim: Output units of extractors that take it (``None``: their default).
        hidden_units: ReLU layers after the extractor. ``None``: two 256-unit layers when
            the extractor has no weights (``mlp``/``combined`` on vectors just flatten, and
            SB3 puts its MLP in the policy's ``net_arch``), none otherwise.

    Raises:
        ValueError: For an unknown extractor name, or one that does not fit the space.
    """

    def __init__(
        self,
        observation_space: gymnasium.Space[Any],
        features_extractor: str = "auto",
        features_dim: int | None = None,
        hidden_units: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.policy_space = policy_observation_space(observation_space)
        kwargs = features_extractor_kwargs(features_extractor, self.policy_space,
                                           features_dim or 0)
        extractor_kwargs = kwargs.get("features_extractor_kwargs", {}) if features_dim else {}
        self.extractor: BaseFeaturesExtractor = kwargs["features_extractor_class"](
            self.policy_space, **extractor_kwargs)
        if hidden_units is None:
            has_weights = any(True for _ in self.extractor.parameters())
            hidden_units = () if has_weights else (256, 256)
        layers: list[nn.Module] = []
        width = int(self.extractor.features_dim)
        for units in hidden_units:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        self.hidden = nn.Sequential(*layers)
        self.features_dim = width

    def forward(self, observations: Any) -> torch.Tensor:
        obs = _channels_first(observations, self.observation_space, self.policy_space)
        features = self.extractor(preprocess_obs(obs, self.policy_space, normalize_images=True))
        return self.hidden(features)
