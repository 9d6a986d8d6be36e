"""The "translation with a sequence to sequence network and attention" tutorial, shrunk: a GRU encoder, a
GRU decoder with Bahdanau attention, teacher forcing, NLLLoss over log_softmax, and greedy decoding.
The task: reverse a sequence of digits."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim

from numpy_init import init_parameters

SOS_token, EOS_token, VOCAB, MAX_LENGTH = 0, 1, 12, 7
rng = np.random.default_rng(141)
pairs = []
for _ in range(48):
    source = rng.integers(2, VOCAB, size=int(rng.integers(3, MAX_LENGTH - 1))).tolist()
    pairs.append((source + [EOS_token], source[::-1] + [EOS_token]))


def pad(ids):
    return ids + [EOS_token] * (MAX_LENGTH - len(ids))


input_tensor = torch.tensor([pad(s) for s, _ in pairs])
target_tensor = torch.tensor([pad(t) for _, t in pairs])


class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size):
        super(EncoderRNN, self).__init__()
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)

    def forward(self, input):
        embedded = self.embedding(input)
        output, hidden = self.gru(embedded)
        return output, hidden


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size):
        super(BahdanauAttention, self).__init__()
        self.Wa = nn.Linear(hidden_size, hidden_size)
        self.Ua = nn.Linear(hidden_size, hidden_size)
        self.Va = nn.Linear(hidden_size, 1)

    def forward(self, query, keys):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
        scores = scores.squeeze(2).unsqueeze(1)
        weights = F.softmax(scores, dim=-1)
        context = torch.bmm(weights, keys)
        return context, weights


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size):
        super(AttnDecoderRNN, self).__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size)
        self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, encoder_outputs, encoder_hidden, target_tensor=None):
        batch_size = encoder_outputs.size(0)
        decoder_input = torch.empty(batch_size, 1, dtype=torch.long).fill_(SOS_token)
        decoder_hidden = encoder_hidden
        decoder_outputs = []
        for i in range(MAX_LENGTH):
            decoder_output, decoder_hidden = self.forward_step(decoder_input, decoder_hidden, encoder_outputs)
            decoder_outputs.append(decoder_output)
            if target_tensor is not None:
                decoder_input = target_tensor[:, i].unsqueeze(1)  # teacher forcing
            else:
                _, topi = decoder_output.topk(1)
                decoder_input = topi.squeeze(-1).detach()
        decoder_outputs = torch.cat(decoder_outputs, dim=1)
        return F.log_softmax(decoder_outputs, dim=-1), decoder_hidden

    def forward_step(self, input, hidden, encoder_outputs):
        embedded = self.embedding(input)
        query = hidden.permute(1, 0, 2)
        context, attn_weights = self.attention(query, encoder_outputs)
        input_gru = torch.cat((embedded, context), dim=2)
        output, hidden = self.gru(input_gru, hidden)
        return self.out(output), hidden


hidden_size = 24
encoder = init_parameters(EncoderRNN(VOCAB, hidden_size), seed=1)
decoder = init_parameters(AttnDecoderRNN(hidden_size, VOCAB), seed=2)
encoder_optimizer = optim.Adam(encoder.parameters(), lr=0.01)
decoder_optimizer = optim.Adam(decoder.parameters(), lr=0.01)
criterion = nn.NLLLoss()
for epoch in range(1, 13):
    total_loss = 0
    for start in range(0, 48, 12):
        encoder_optimizer.zero_grad()
        decoder_optimizer.zero_grad()
        encoder_outputs, encoder_hidden = encoder(input_tensor[start:start + 12])
        decoder_outputs, _ = decoder(encoder_outputs, encoder_hidden, target_tensor[start:start + 12])
        loss = criterion(decoder_outputs.view(-1, decoder_outputs.size(-1)), target_tensor[start:start + 12].view(-1))
        loss.backward()
        encoder_optimizer.step()
        decoder_optimizer.step()
        total_loss += loss.item()
    if epoch % 4 == 0:
        print(f"epoch {epoch}: loss {total_loss / 4:.4f}")

with torch.no_grad():
    encoder_outputs, encoder_hidden = encoder(input_tensor)
    decoder_outputs, _ = decoder(encoder_outputs, encoder_hidden)
    greedy_loss = criterion(decoder_outputs.view(-1, VOCAB), target_tensor.view(-1)).item()
    decoded = decoder_outputs.argmax(-1)[0].tolist()
print("source", pairs[0][0], "decoded", decoded)
print(f"final_loss={greedy_loss:.6f}")
