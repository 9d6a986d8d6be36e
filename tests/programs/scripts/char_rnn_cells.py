"""Hand-unrolled recurrent cells (the char-RNN generation tutorial's loop) with RNNCell, GRUCell and
LSTMCell side by side, trained to predict the next character."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from numpy_init import init_parameters

text = "hello world, hello cells, hello recurrent networks. "
chars = sorted(set(text))
index = {c: i for i, c in enumerate(chars)}
data = torch.tensor([index[c] for c in text])


class Generator(nn.Module):
    def __init__(self, vocab, hidden):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = nn.RNNCell(hidden, hidden, nonlinearity="tanh")
        self.gru = nn.GRUCell(hidden, hidden)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.out = nn.Linear(3 * hidden, vocab)
        self.hidden = hidden

    def forward(self, tokens):
        h_rnn = torch.zeros(1, self.hidden)
        h_gru = torch.zeros(1, self.hidden)
        h_lstm = (torch.zeros(1, self.hidden), torch.zeros(1, self.hidden))
        logits = []
        for t in range(tokens.size(0)):
            x = self.embed(tokens[t:t + 1])
            h_rnn = self.rnn(x, h_rnn)
            h_gru = self.gru(x, h_gru)
            h_lstm = self.lstm(x, h_lstm)
            logits.append(self.out(torch.cat([h_rnn, h_gru, h_lstm[0]], dim=1)))
        return torch.cat(logits)


model = init_parameters(Generator(len(chars), 16))
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
for step in range(25):
    logits = model(data[:-1])
    loss = F.cross_entropy(logits, data[1:])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 5 == 0:
        print(f"step {step} loss {loss.item():.4f}")
print(f"final_loss={loss.item():.6f}")
