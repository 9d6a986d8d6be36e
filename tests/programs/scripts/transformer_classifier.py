"""A text classifier on nn.TransformerEncoder (batch_first) with sinusoidal positional encoding, a padding
mask, mean pooling over real tokens, label smoothing and gradient clipping."""
import math

import numpy as np
import torch
import torch.nn as nn

from numpy_init import init_parameters

VOCAB, PAD, MAX_LEN = 20, 0, 12
rng = np.random.default_rng(101)
lengths = rng.integers(4, MAX_LEN + 1, size=64)
tokens = np.zeros((64, MAX_LEN), dtype=np.int64)
for row, length in enumerate(lengths):
    tokens[row, :length] = rng.integers(1, VOCAB, size=length)
labels = (tokens == 7).any(axis=1).astype(np.int64)  # "does the sentence contain token 7"
tokens, labels = torch.from_numpy(tokens), torch.from_numpy(labels)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=64):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        return x + self.pe[: x.size(1)]


class TransformerClassifier(nn.Module):
    def __init__(self, d_model=16, nhead=2, num_layers=2):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, d_model, padding_idx=PAD)
        self.pos = PositionalEncoding(d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 2)
        self.d_model = d_model

    def forward(self, src):
        padding = src == PAD
        x = self.pos(self.embedding(src) * math.sqrt(self.d_model))
        x = self.encoder(x, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).float()
        pooled = (x * keep).sum(1) / keep.sum(1)
        return self.head(pooled)


model = init_parameters(TransformerClassifier())
criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
for epoch in range(5):
    model.train()
    for start in range(0, 64, 16):
        optimizer.zero_grad()
        loss = criterion(model(tokens[start:start + 16]), labels[start:start + 16])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(tokens)
        eval_loss = criterion(logits, labels).item()
        accuracy = (logits.argmax(1) == labels).float().mean().item()
    print(f"epoch {epoch}: loss {eval_loss:.4f} accuracy {accuracy:.3f}")
print(f"final_loss={eval_loss:.6f}")
