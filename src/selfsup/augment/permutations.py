"""Permutation sets for the jigsaw task, chosen greedily for maximal Hamming distance.

Noroozi & Favaro ("Unsupervised Learning of Visual Representations by Solving Jigsaw
Puzzles", ECCV 2016, sec. 3.2) classify which of a fixed set of tile permutations was applied;
the set is built greedily so that its permutations are far apart, which makes the task
well-posed and harder to shortcut. They use 1000 permutations of 9 tiles; the Google
re-implementation (Kolesnikov et al. 2019) 100, our default.
"""
from __future__ import annotations

import math

import torch

CRITERIA = ("mean", "min")


def all_permutations(n: int) -> torch.Tensor:
    """Every permutation of 0..n-1 in lexicographic order, long [n!, n]: those starting with
    f are f followed by the permutations of the other values, built from the (n-1)-case."""
    perms = torch.zeros(1, 0, dtype=torch.long)
    for size in range(1, n + 1):
        first = torch.arange(size).repeat_interleave(len(perms))  # [size * (size-1)!]
        rest = perms.repeat(size, 1)
        rest = rest + (rest >= first[:, None]).long()  # skip the value used as the first element
        perms = torch.cat([first[:, None], rest], dim=1)
    return perms


def hamming(perms: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Hamming distance (positions that differ) of each row of perms [P, n] to perm [n]."""
    return (perms != perm).sum(dim=1)


def max_hamming_permutations(
    count: int = 100, seed: int = 0, criterion: str = "mean", num_tiles: int = 9
) -> torch.Tensor:
    """A set of ``count`` distinct permutations of ``num_tiles`` tiles, long [count, num_tiles].

    The first is drawn at random (seeded); each next one is, among all permutations not yet
    chosen, one that maximises the ``criterion`` of its Hamming distances to the chosen set:
    ``"mean"`` (Noroozi & Favaro's maximal average distance) or ``"min"`` (the distance to the
    nearest chosen permutation: the greedy max-min set). Ties are broken at random with the
    same seed, so a seed always gives the same set. The row index is the jigsaw label."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if not 1 <= count <= math.factorial(num_tiles):
        raise ValueError(f"count must be between 1 and {num_tiles}! = {math.factorial(num_tiles)}, got {count}")
    g = torch.Generator().manual_seed(seed)
    candidates = all_permutations(num_tiles)
    chosen = [int(torch.randint(len(candidates), (1,), generator=g))]
    score = hamming(candidates, candidates[chosen[0]])  # sum (mean criterion) or min of distances
    taken = torch.zeros(len(candidates), dtype=torch.bool)
    taken[chosen[0]] = True
    for _ in range(count - 1):
        masked = score.masked_fill(taken, -1)
        ties = torch.nonzero(masked == masked.max()).flatten()
        pick = int(ties[torch.randint(len(ties), (1,), generator=g)])
        chosen.append(pick)
        taken[pick] = True
        distance = hamming(candidates, candidates[pick])
        score = score + distance if criterion == "mean" else torch.minimum(score, distance)
    return candidates[chosen]
