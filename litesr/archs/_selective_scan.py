"""A pure-PyTorch selective scan (Mamba's S6 recurrence), for MambaIR-style models on any device.

The recurrence, per batch, channel ``d`` and state ``n`` (the semantics of ``selective_scan_ref`` in
state-spaces/mamba, real-valued ``A``, input-dependent ``B``/``C``)::

    delta = softplus(delta + delta_bias)            (when delta_softplus)
    h[t]  = exp(delta[t] * A[d, n]) * h[t-1] + delta[t] * B[n, t] * u[t]
    y[t]  = sum_n C[n, t] * h[t, n] + D[d] * u[t]

The official CUDA kernel runs this loop inside one thread block; a Python loop over the tokens would take one
interpreter step per pixel. Here the sequence is cut into chunks of ``CHUNK`` tokens: inside every chunk the linear
recurrence ``h = a * h_prev + b`` is solved by log2(CHUNK) doubling steps (Hillis-Steele), all chunks at once; the
states entering each chunk come from the same scan run on the chunk summaries (recursively). Only products of
decays in (0, 1] are formed, so nothing overflows (no exp of a cumulative sum's difference). The sequence is also
processed in blocks whose (batch x channels x tokens x states) working set stays under ``max_elements``, carrying
the state from block to block, so memory is bounded whatever the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK = 32
MAX_ELEMENTS = 1 << 22  # elements of one (batch, channels, block tokens, states) tensor: 16 MB in float32


def linear_scan(a: Tensor, b: Tensor, chunk: int = CHUNK) -> tuple[Tensor, Tensor]:
    """Solve ``h[t] = a[t] * h[t-1] + b[t]`` (h[-1] = 0) along dimension -2; returns (cumulative a, h)."""
    length = a.shape[-2]
    if length > chunk:
        pad = -length % chunk
        if pad:  # a = 1, b = 0 past the end: the state passes through unchanged
            a = F.pad(a, (0, 0, 0, pad), value=1.0)
            b = F.pad(b, (0, 0, 0, pad))
        shape = (*a.shape[:-2], (length + pad) // chunk, chunk, a.shape[-1])
        a_c, h_c = linear_scan(a.reshape(shape), b.reshape(shape), chunk)
        # State entering chunk k: the scan over the chunk summaries (whole-chunk decay, end state), shifted by one.
        _, ends = linear_scan(a_c[..., -1, :], h_c[..., -1, :], chunk)
        incoming = F.pad(ends[..., :-1, :], (0, 0, 1, 0)).unsqueeze(-2)
        h_c = h_c + a_c * incoming
        a_total = a_c * _chunk_prefix(a_c[..., -1, :]).unsqueeze(-2)
        flat = (*a.shape[:-2], length + pad, a.shape[-1])
        return a_total.reshape(flat)[..., :length, :], h_c.reshape(flat)[..., :length, :]
    step = 1
    while step < length:  # Hillis-Steele doubling: after k steps each h[t] sums the last 2^k inputs
        b = torch.cat([b[..., :step, :], b[..., step:, :] + a[..., step:, :] * b[..., :-step, :]], dim=-2)
        a = torch.cat([a[..., :step, :], a[..., step:, :] * a[..., :-step, :]], dim=-2)
        step *= 2
    return a, b


def _chunk_prefix(decay: Tensor) -> Tensor:
    """Product of the whole-chunk decays of all earlier chunks (exclusive prefix product along dimension -2)."""
    return F.pad(torch.cumprod(decay, dim=-2)[..., :-1, :], (0, 0, 1, 0), value=1.0)


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                   delta_bias: Tensor | None = None, delta_softplus: bool = False,
                   max_elements: int = MAX_ELEMENTS) -> Tensor:
    """Mamba's selective scan: ``u``, ``delta`` (batch, channels, L); ``A`` (channels, N) real; ``B``, ``C``
    (batch, groups, N, L) or (batch, N, L), the channels split evenly over the groups; ``D``, ``delta_bias``
    (channels,). Returns y (batch, channels, L) in ``u``'s dtype, computed in at least float32."""
    if A.is_complex():
        raise NotImplementedError("selective_scan: complex A is not supported (the vision models use a real A)")
    work = torch.promote_types(u.dtype, torch.float32)
    batch, channels, length = u.shape
    n_state = A.shape[1]
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    groups = B.shape[1]
    per_group = channels // groups
    u_w = u.to(work).view(batch, groups, per_group, length)
    delta = delta.to(work)
    if delta_bias is not None:
        delta = delta + delta_bias.to(work)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    delta = delta.view(batch, groups, per_group, length)
    A = A.to(work).view(groups, per_group, 1, n_state)
    Bt = B.to(work).transpose(-1, -2).unsqueeze(2)  # (batch, groups, 1, L, N)
    Ct = C.to(work).transpose(-1, -2).unsqueeze(2)
    block = max(CHUNK, max_elements // max(1, batch * channels * n_state) // CHUNK * CHUNK)
    state = None
    outputs = []
    for start in range(0, length, block):
        stop = min(length, start + block)
        d_blk, u_blk = delta[..., start:stop, None], u_w[..., start:stop, None]
        decay = torch.exp(d_blk * A)  # (batch, groups, per_group, block, N)
        cum_decay, h = linear_scan(decay, d_blk * u_blk * Bt[..., start:stop, :])
        if state is not None:
            h = h + cum_decay * state.unsqueeze(-2)
        state = h[..., -1, :]
        outputs.append((h * Ct[..., start:stop, :]).sum(-1))
    y = torch.cat(outputs, dim=-1)
    if D is not None:
        y = y + u_w * D.to(work).view(groups, per_group, 1)
    return y.reshape(batch, channels, length).to(u.dtype)
