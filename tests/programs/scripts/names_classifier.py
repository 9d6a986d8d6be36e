"""The "classifying names with a character-level RNN" tutorial: one-hot letters, an nn.RNN + Linear +
LogSoftmax classifier, NLLLoss, SGD, and categoryFromOutput with topk."""
import string
import time

import torch
import torch.nn as nn

from numpy_init import init_parameters

all_letters = string.ascii_letters + " .,;'"
n_letters = len(all_letters)
category_lines = {
    "English": ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies"],
    "Italian": ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"],
    "Japanese": ["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura"],
}
all_categories = list(category_lines)
n_categories = len(all_categories)


def letterToIndex(letter):
    return all_letters.find(letter)


def lineToTensor(line):
    tensor = torch.zeros(len(line), 1, n_letters)
    for li, letter in enumerate(line):
        tensor[li][0][letterToIndex(letter)] = 1
    return tensor


class CharRNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super(CharRNN, self).__init__()
        self.rnn = nn.RNN(input_size, hidden_size)
        self.h2o = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, line_tensor):
        rnn_out, hidden = self.rnn(line_tensor)
        output = self.h2o(hidden[0])
        output = self.softmax(output)
        return output


def categoryFromOutput(output):
    top_n, top_i = output.topk(1)
    category_i = top_i[0].item()
    return all_categories[category_i], category_i


rnn = init_parameters(CharRNN(n_letters, 32, n_categories))
criterion = nn.NLLLoss()
optimizer = torch.optim.SGD(rnn.parameters(), lr=0.05)
examples = [(category, line) for category in all_categories for line in category_lines[category]]
start = time.time()
for epoch in range(6):
    current_loss = 0
    for category, line in examples:
        category_tensor = torch.tensor([all_categories.index(category)], dtype=torch.long)
        output = rnn(lineToTensor(line))
        loss = criterion(output, category_tensor)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(rnn.parameters(), 3)
        optimizer.step()
        current_loss += loss.item()
    print(f"epoch {epoch} loss {current_loss / len(examples):.4f}")
guess, _ = categoryFromOutput(rnn(lineToTensor("Tanaka")))
print("Tanaka ->", guess)
print(f"final_loss={current_loss / len(examples):.6f}")
