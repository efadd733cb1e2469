#!/usr/bin/python3
"""tiny-wan: train and export a fourth small autoregressive video diffusion transformer (ARVD),
its architecture closer to Wan2.1's than the others'.

`tiny-arvd-m`'s script (same data, objective, interface, prompt encoding, sampler, EMA export and
budget logic) with three changes towards Wan2.1: a Conv3d patch embedding (kernel = stride =
1x4x4) instead of a Linear plus a learned position table; 3-D RoPE on self-attention q and k
(head_dim d split into d - 4(d//6), 2(d//6), 2(d//6) rotary dims for frame, patch row, patch
column; theta 10000; real-valued, precomputed cos/sin buffers); RMSNorm qk-norm (learned weight,
eps 1e-6) on the full-width q and k of self- and cross-attention (Wan's norm_q / norm_k).
Width 128, 4 blocks, 4 heads, seed 29, trained on a CPU.

Run with Debian's python (it sees python3-torch 1.13, python3-onnx, python3-numpy):

    /usr/bin/python3 train.py --out . --minutes 40          # train (time budget) + export
    /usr/bin/python3 train.py --out . --export-only         # re-export from ckpt.pt (EMA weights)

Outputs in --out: model.onnx (fp32, opset 17, fixed shapes), meta.json, ckpt.pt (EMA + raw
weights, step, loss, text_table; saved every 200 steps), train.log. --export-only reads
--out/ckpt.pt and writes a byte-identical model.onnx and meta.json.

Speed note: Debian's torch links the reference BLAS by default; with libopenblas0-pthread
installed (it takes over libblas.so.3) a step of 32 videos took ~1.4-1.7 s on 2 shared cores
instead of ~8 s.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- fixed shapes (tiny-arvd README)
FRAMES, CHUNK, CHANNELS, H, W = 12, 2, 3, 16, 16
CHUNKS = FRAMES // CHUNK
PATCH = 4
TOK_PER_FRAME = (H // PATCH) * (W // PATCH)  # 16
TOKENS = FRAMES * TOK_PER_FRAME  # 192
TEXT_LEN, TEXT_DIM, VOCAB = 4, 32, 16
FREQ_DIM = 64  # sinusoidal timestep features: 32 cos + 32 sin
VOCAB_WORDS = ["square", "disc", "red", "green", "blue", "yellow", "slow", "fast", "one", "two",
               "unused10", "unused11", "unused12", "unused13", "unused14", "unused15"]
SAMPLER_TIMESTEPS = [1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0]


# ---------------------------------------------------------------- model
# Module paths are chosen so that the TorchScript exporter names the ONNX nodes as in
# tiny-arvd / tiny-arvd-l: /blocks.N/self_attn/q/MatMul, /blocks.N/ffn/ffn.2/MatMul,
# /time_projection/time_projection.1/MatMul, /head/MatMul, ... (the patch embedding is a
# Conv here: /patch_embedding/Conv).

class UnitLayerNorm(nn.Module):
    """LayerNorm without learned affine (Wan's norm1/norm2/head norm). The scale is a ones
    buffer `unit` (the exporter needs a scale input); the bias is absent at export and is given
    an explicit zero initializer afterwards (onnxruntime SkipLayerNormFusion crash)."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.register_buffer("unit", torch.ones(dim))

    def forward(self, x):
        return F.layer_norm(x, (self.dim,), self.unit, None, self.eps)


class RMSNorm(nn.Module):
    """Wan's RMSNorm (qk-norm): x / sqrt(mean(x^2) + eps) * weight, over the last dim."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim, theta=10000.0):
    """Wan's 3-D RoPE as real cos/sin tables [TOKENS, head_dim // 2]: the head_dim is split
    into d - 4(d//6), 2(d//6), 2(d//6) rotary dims (pairs of adjacent channels) for the
    frame, the patch row and the patch column of each token (frame-major, row-major order)."""
    d = head_dim
    dims = [d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6)]
    tok = torch.arange(TOKENS)
    pos = [tok // TOK_PER_FRAME, (tok % TOK_PER_FRAME) // (W // PATCH), tok % (W // PATCH)]
    angles = []
    for n, p in zip(dims, pos):
        inv = 1.0 / torch.pow(theta, torch.arange(0, n, 2, dtype=torch.float64) / n)
        angles.append(p.to(torch.float64)[:, None] * inv[None, :])
    ang = torch.cat(angles, dim=1)  # [TOKENS, d // 2]
    return torch.cos(ang).float(), torch.sin(ang).float()


def rope_apply(x, cos, sin):
    """Rotates adjacent channel pairs (x[2i], x[2i+1]) of x [B, heads, T, d] by the angles
    whose cos/sin are [T, d // 2] (Wan's complex multiply, written with reals)."""
    b, h, n, d = x.shape
    x = x.reshape(b, h, n, d // 2, 2)
    xe, xo = x[..., 0], x[..., 1]
    out = torch.stack([xe * cos - xo * sin, xe * sin + xo * cos], dim=-1)
    return out.reshape(b, h, n, d)


class Attention(nn.Module):
    """Multi-head attention with q/k/v/o linears, RMSNorm qk-norm on the full-width q and k
    (Wan's norm_q / norm_k), optional RoPE (cos, sin) on q and k, optional additive mask
    [B, 1, Nq, Nk]."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim)
        self.norm_k = RMSNorm(dim)

    def forward(self, x, ctx, bias=None, rope=None):
        b, n, d = x.shape
        m = ctx.shape[1]
        q = self.norm_q(self.q(x)).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.norm_k(self.k(ctx)).view(b, m, self.heads, self.head_dim).transpose(1, 2)
        v = self.v(ctx).view(b, m, self.heads, self.head_dim).transpose(1, 2)
        if rope is not None:
            q = rope_apply(q, *rope)
            k = rope_apply(k, *rope)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        if bias is not None:
            att = att + bias
        att = att.softmax(dim=-1)
        out = (att @ v).transpose(1, 2).reshape(b, n, d)
        return self.o(out)


class Block(nn.Module):
    """Wan-style block: modulated self-attn (block-causal), cross-attn to text, modulated FFN."""

    def __init__(self, dim, heads, ffn_mult=4):
        super().__init__()
        self.norm1 = UnitLayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=True)
        self.cross_attn = Attention(dim, heads)
        self.norm2 = UnitLayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(ffn_mult * dim, dim))
        # per-block learned modulation offsets (6 = shift/scale/gate for attn and ffn)
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)

    def forward(self, x, e, ctx, bias, rope):
        # e: [B, T, 6, dim] per-token (= per-frame) modulation from the timestep
        e = self.modulation.unsqueeze(1) + e
        shift_a, scale_a, gate_a = e[:, :, 0], e[:, :, 1], e[:, :, 2]
        shift_f, scale_f, gate_f = e[:, :, 3], e[:, :, 4], e[:, :, 5]
        h = self.norm1(x) * (1 + scale_a) + shift_a
        x = x + gate_a * self.self_attn(h, h, bias, rope)
        x = x + self.cross_attn(self.norm3(x), ctx)
        h = self.norm2(x) * (1 + scale_f) + shift_f
        x = x + gate_f * self.ffn(h)
        return x


class TinyARVD(nn.Module):
    def __init__(self, dim=128, depth=4, heads=4):
        super().__init__()
        self.dim = dim
        pdim = CHANNELS * PATCH * PATCH  # 48
        # Wan's patch embedding: Conv3d over [B, C, F, H, W], kernel = stride = (1, 4, 4)
        self.patch_embedding = nn.Conv3d(CHANNELS, dim, kernel_size=(1, PATCH, PATCH),
                                         stride=(1, PATCH, PATCH))
        self.text_embedding = nn.Sequential(nn.Linear(TEXT_DIM, dim), nn.GELU(approximate="tanh"),
                                            nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(FREQ_DIM, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.head_norm = UnitLayerNorm(dim)
        self.head_modulation = nn.Parameter(torch.randn(1, 2, dim) / dim ** 0.5)
        self.head = nn.Linear(dim, pdim)
        # token -> frame index (int64 buffer, exported as initializer `frame_of`)
        self.register_buffer("frame_of", torch.arange(TOKENS) // TOK_PER_FRAME)
        # 3-D RoPE tables [T, head_dim // 2] (buffers -> initializers), shared by all blocks
        cos, sin = rope_tables(dim // heads)
        self.register_buffer("rope_cos", cos)
        self.register_buffer("rope_sin", sin)
        # block-causal pattern over chunks of 2 frames (1 = key visible); its unsqueeze is
        # constant-folded at export into an initializer `onnx::Mul_N` [1, T, T]
        chunk_of = torch.arange(TOKENS) // (TOK_PER_FRAME * CHUNK)
        self.register_buffer("causal", (chunk_of[:, None] >= chunk_of[None, :]).float())
        # sinusoid frequencies: plain tensor attribute -> exported as a Constant
        self.freqs = torch.pow(10000.0, -torch.arange(FREQ_DIM // 2, dtype=torch.float32) / (FREQ_DIM // 2))
        # zero-init the output head and gates' projection a little, for stable starts
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, latents, timesteps, frame_mask, text_emb):
        b = latents.shape[0]
        # patchify 4x4 with the Conv3d: [B,F,C,H,W] -> [B,C,F,H,W] -> [B,dim,F,4,4] -> [B, F*16, dim]
        # (tokens frame-major, then patch row, then patch column, as in tiny-arvd)
        x = self.patch_embedding(latents.permute(0, 2, 1, 3, 4))
        x = x.flatten(2).transpose(1, 2)
        # per-token timestep features
        t = timesteps[:, self.frame_of] * 1000.0
        arg = t.unsqueeze(-1) * self.freqs
        t_emb = self.time_embedding(torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1))
        e = self.time_projection(t_emb).reshape(b, TOKENS, 6, self.dim)
        ctx = self.text_embedding(text_emb)
        # block-causal mask over chunks of 2 frames, keys of masked frames removed
        fm = frame_mask[:, self.frame_of]  # [B, T]
        allowed = self.causal.unsqueeze(0) * fm.unsqueeze(1)  # [B,T,T]
        bias = ((1.0 - allowed) * -10000.0).unsqueeze(1)  # [B,1,T,T]
        rope = (self.rope_cos, self.rope_sin)
        for blk in self.blocks:
            x = blk(x, e, ctx, bias, rope)
        eh = self.head_modulation.unsqueeze(1) + t_emb.unsqueeze(2)  # [B,T,2,dim]
        x = self.head_norm(x) * (1 + eh[:, :, 1]) + eh[:, :, 0]
        x = self.head(x)
        # unpatchify
        x = x.reshape(b, FRAMES, H // PATCH, W // PATCH, CHANNELS, PATCH, PATCH)
        x = x.permute(0, 1, 4, 2, 5, 3, 6).reshape(b, FRAMES, CHANNELS, H, W)
        return x


# ---------------------------------------------------------------- synthetic data (tiny-arvd README)
COLOURS = torch.tensor([[0.95, -0.75, -0.75],    # red
                        [-0.75, 0.9, -0.75],     # green
                        [-0.7, -0.6, 0.95],      # blue
                        [0.95, 0.9, -0.75]])     # yellow
RADIUS = 2.5


def make_videos(n, gen):
    """n random videos + their token ids. Returns video [n,12,3,16,16] in [-1,1], ids [n,4]."""
    shape = torch.randint(0, 2, (n,), generator=gen)
    colour = torch.randint(0, 4, (n,), generator=gen)
    speed = torch.randint(0, 2, (n,), generator=gen)
    count = torch.randint(0, 2, (n,), generator=gen)
    ids = torch.stack([shape, 2 + colour, 6 + speed, 8 + count], 1)
    # dark vertical gradient background (slightly varying per video)
    top = -0.95 + 0.1 * torch.rand(n, 1, 3, 1, 1, generator=gen)
    bottom = -0.55 + 0.1 * torch.rand(n, 1, 3, 1, 1, generator=gen)
    ramp = torch.linspace(0, 1, H).view(1, 1, 1, H, 1)
    video = (top + (bottom - top) * ramp).expand(n, FRAMES, 3, H, W).clone()
    yy, xx = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    lo, hi = RADIUS, W - RADIUS
    for obj in range(2):
        present = (count == 1) | (obj == 0)  # object 1 only for "two"
        pos = lo + (hi - lo) * torch.rand(n, 2, generator=gen)
        ang = 2 * math.pi * torch.rand(n, generator=gen)
        mag = torch.where(speed == 0, 0.35 + 0.3 * torch.rand(n, generator=gen),
                          1.0 + 0.6 * torch.rand(n, generator=gen))
        vel = torch.stack([torch.cos(ang), torch.sin(ang)], 1) * mag[:, None]
        for f in range(FRAMES):
            dx = xx[None] - pos[:, 0, None, None]
            dy = yy[None] - pos[:, 1, None, None]
            sq = (dx.abs() <= RADIUS) & (dy.abs() <= RADIUS)
            dc = dx * dx + dy * dy <= RADIUS * RADIUS
            m = torch.where(shape[:, None, None] == 0, sq, dc) & present[:, None, None]
            col = COLOURS[colour][:, :, None, None].expand(n, 3, H, W)
            video[:, f] = torch.where(m[:, None], col, video[:, f])
            # move, bounce off the walls
            pos = pos + vel
            for a in range(2):
                over = pos[:, a] > hi
                under = pos[:, a] < lo
                pos[:, a] = torch.where(over, 2 * hi - pos[:, a], pos[:, a])
                pos[:, a] = torch.where(under, 2 * lo - pos[:, a], pos[:, a])
                vel[:, a] = torch.where(over | under, -vel[:, a], vel[:, a])
    return video.clamp(-1, 1), ids


def df_batch(video, gen):
    """Diffusion forcing: pick a current chunk c per video; frames before it clean (t=0),
    chunk c noised with a logit-normal level t, later frames zeroed, at timestep t and masked.
    Flow matching: x_t = (1-t) x0 + t eps, target velocity eps - x0 (the sampler integrates
    from t=1 to 0 with x += (t' - t) v)."""
    n = video.shape[0]
    c = torch.randint(0, CHUNKS, (n,), generator=gen)
    t = torch.sigmoid(torch.randn(n, generator=gen))
    frame = torch.arange(FRAMES)
    fchunk = frame // CHUNK
    before = fchunk[None] < c[:, None]
    cur = fchunk[None] == c[:, None]
    eps = torch.randn(video.shape, generator=gen)
    tf = t[:, None, None, None, None]
    noisy = (1 - tf) * video + tf * eps
    lat = torch.where(before[:, :, None, None, None], video,
                      torch.where(cur[:, :, None, None, None], noisy, torch.zeros_like(video)))
    timesteps = torch.where(before, torch.zeros(n, FRAMES), t[:, None].expand(n, FRAMES))
    frame_mask = (fchunk[None] <= c[:, None]).float()
    target = eps - video
    return lat, timesteps, frame_mask, target, cur.float()


# ---------------------------------------------------------------- export
def export_onnx(model, path):
    model = model.eval()
    args = (torch.randn(1, FRAMES, CHANNELS, H, W), torch.rand(1, FRAMES), torch.ones(1, FRAMES),
            torch.randn(1, TEXT_LEN, TEXT_DIM))
    torch.onnx.export(model, args, path, opset_version=17, do_constant_folding=True,
                      input_names=["latents", "timesteps", "frame_mask", "text_emb"],
                      output_names=["velocity"])
    import onnx
    from onnx import numpy_helper
    import numpy as np
    m = onnx.load(path)
    # LayerNormalization(x, scale, "") -> explicit zero bias initializer (ORT 1.30 fusion crash)
    zname = f"layernorm_zero_bias_{model.dim}"
    used = False
    for node in m.graph.node:
        if node.op_type == "LayerNormalization" and (len(node.input) < 3 or node.input[2] == ""):
            while len(node.input) < 3:
                node.input.append("")
            node.input[2] = zname
            used = True
    if used:
        m.graph.initializer.append(numpy_helper.from_array(np.zeros(model.dim, np.float32), zname))
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return m


def write_meta(out, text_table, seed, steps, final_loss, dim, depth, heads):
    meta = {"frames": FRAMES, "chunk_frames": CHUNK, "chunks": CHUNKS, "channels": CHANNELS,
            "height": H, "width": W, "text_len": TEXT_LEN, "text_dim": TEXT_DIM,
            "dim": dim, "depth": depth, "heads": heads, "vocab": VOCAB_WORDS,
            "text_table": text_table.tolist(),
            "sampler": {"kind": "flow-matching-euler", "timesteps": SAMPLER_TIMESTEPS,
                        "update": "x_next = x + (t_next - t) * velocity"},
            "seed": seed, "steps": steps, "final_loss": final_loss}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f)


# ---------------------------------------------------------------- training
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    ap.add_argument("--seed", type=int, default=29)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=40.0, help="wall budget for training")
    ap.add_argument("--steps", type=int, default=0, help="fixed step count (0: fit --minutes)")
    ap.add_argument("--probe", type=int, default=15, help="steps timed to fit the budget")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export-only", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    # the "text encoder": a fixed random table (seeded, new for this model)
    text_table = torch.randn(VOCAB, TEXT_DIM, generator=torch.Generator().manual_seed(a.seed + 1000))
    model = TinyARVD(a.dim, a.depth, a.heads)
    ema = TinyARVD(a.dim, a.depth, a.heads)
    ema.load_state_dict(model.state_dict())
    ckpt_path = os.path.join(a.out, "ckpt.pt")
    log = open(os.path.join(a.out, "train.log"), "a")

    def say(s):
        print(s, flush=True)
        log.write(s + "\n")
        log.flush()

    if a.export_only:
        ck = torch.load(ckpt_path)
        ema.load_state_dict(ck["ema"])
        text_table = ck["text_table"]
        export_onnx(ema, os.path.join(a.out, "model.onnx"))
        write_meta(a.out, text_table, a.seed, ck["step"], ck["loss"], a.dim, a.depth, a.heads)
        say(f"exported from ckpt step {ck['step']} loss {ck['loss']:.4f}")
        return

    nparam = sum(p.numel() for p in model.parameters())
    say(f"params {nparam}  dim {a.dim} depth {a.depth} heads {a.heads} batch {a.batch} seed {a.seed}")
    # (the "pos" test is tiny-arvd-m's; this model has no position table)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and n != "pos"]
    nodecay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and n != "pos")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": nodecay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.99))
    total = a.steps if a.steps > 0 else 10 ** 9  # fixed after the probe when fitting a budget
    budget = a.minutes * 60.0

    def lr_at(step):  # warm-up then cosine decay to 10%
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        p = min(1.0, (step - a.warmup) / max(1, total - a.warmup))
        return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

    t0 = time.time()
    ema_loss, step = None, 0
    while step < total:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        video, ids = make_videos(a.batch, gen)
        lat, ts, fm, target, wmask = df_batch(video, gen)
        text = text_table[ids]
        pred = model(lat, ts, fm, text)
        # loss on the current chunk's frames only
        err = ((pred - target) ** 2).mean(dim=(2, 3, 4))
        loss = (err * wmask).sum() / wmask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(0.999, (1 + step) / (10 + step))  # EMA 0.999 (warm-started)
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        step += 1
        lv = loss.item()
        ema_loss = lv if ema_loss is None else 0.98 * ema_loss + 0.02 * lv
        el = time.time() - t0
        if a.steps == 0 and step == a.probe:
            sps = el / step
            total = max(a.probe + 1, int(budget / sps))
            say(f"probe: {sps:.3f} s/step -> {total} steps for {a.minutes} min")
        if a.steps == 0 and el > budget * 1.08 and step < total:
            say(f"wall budget exceeded at step {step}; stopping early")
            total = step
        if step % 25 == 0 or step == total:
            say(f"step {step}/{total if total < 10**9 else '?'} loss {lv:.4f} avg {ema_loss:.4f} "
                f"lr {lr_at(step - 1):.2e} {el:.0f}s {el / step:.3f}s/step")
        if step % 200 == 0 or step == total:
            torch.save({"ema": ema.state_dict(), "model": model.state_dict(), "step": step,
                        "loss": ema_loss, "text_table": text_table}, ckpt_path)
    el = time.time() - t0
    say(f"done: {step} steps in {el:.0f}s ({el / step:.3f} s/step), final loss (running avg) {ema_loss:.4f}")
    export_onnx(ema, os.path.join(a.out, "model.onnx"))
    write_meta(a.out, text_table, a.seed, step, ema_loss, a.dim, a.depth, a.heads)
    say("exported model.onnx + meta.json")


if __name__ == "__main__":
    main()
