"""The transfer-learning tutorial's fixed-feature-extractor variant: a torchvision ResNet-18 whose weights come
from a local file, every layer frozen except a new fc head, ImageNet normalisation, StepLR, and the best
model's state_dict kept with copy.deepcopy."""
import copy
import os
import time

import torch
import torch.nn as nn
import torch.optim as optim
import torchvision
from torch.optim import lr_scheduler
from torchvision import models, transforms

from numpy_init import labels, normal

device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

# "Pretrained" weights: written once to disk and loaded through weights=<path>, as an offline machine would.
if not os.path.exists("resnet18_pretrained.pt"):
    torch.save(models.resnet18(weights=None).state_dict(), "resnet18_pretrained.pt")
model_conv = torchvision.models.resnet18(weights=os.path.join(".", "resnet18_pretrained.pt"))
for param in model_conv.parameters():
    param.requires_grad = False
num_ftrs = model_conv.fc.in_features
model_conv.fc = nn.Linear(num_ftrs, 2)
model_conv = model_conv.to(device)

normalize = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
images = torch.sigmoid(normal((16, 3, 32, 32), seed=121))
inputs_all = torch.stack([normalize(image) for image in images])
labels_all = labels(16, 2, seed=122)
dataloaders = {"train": [(inputs_all[i:i + 4], labels_all[i:i + 4]) for i in range(0, 12, 4)],
               "val": [(inputs_all[12:], labels_all[12:])]}
dataset_sizes = {"train": 12, "val": 4}

criterion = nn.CrossEntropyLoss()
optimizer_conv = optim.SGD(model_conv.fc.parameters(), lr=0.001, momentum=0.9)
exp_lr_scheduler = lr_scheduler.StepLR(optimizer_conv, step_size=7, gamma=0.1)


def train_model(model, criterion, optimizer, scheduler, num_epochs=2):
    since = time.time()
    best_model_wts = copy.deepcopy(model.state_dict())
    best_acc = 0.0
    for epoch in range(num_epochs):
        for phase in ["train", "val"]:
            model.train() if phase == "train" else model.eval()
            running_loss = 0.0
            running_corrects = 0
            for inputs, labels_batch in dataloaders[phase]:
                inputs, labels_batch = inputs.to(device), labels_batch.to(device)
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)
                    _, preds = torch.max(outputs, 1)
                    loss = criterion(outputs, labels_batch)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
                running_loss += loss.item() * inputs.size(0)
                running_corrects += torch.sum(preds == labels_batch.data)
            if phase == "train":
                scheduler.step()
            epoch_loss = running_loss / dataset_sizes[phase]
            epoch_acc = running_corrects.double() / dataset_sizes[phase]
            print(f"{phase} Loss: {epoch_loss:.4f} Acc: {epoch_acc:.4f}")
            if phase == "val" and epoch_acc >= best_acc:
                best_acc = epoch_acc
                best_model_wts = copy.deepcopy(model.state_dict())
    print(f"Training complete in {time.time() - since:.0f}s, best val Acc: {best_acc:4f}")
    model.load_state_dict(best_model_wts)
    return model, epoch_loss


model_conv, final = train_model(model_conv, criterion, optimizer_conv, exp_lr_scheduler)
assert all(not p.requires_grad for name, p in model_conv.named_parameters() if not name.startswith("fc."))
print(f"final_loss={final:.6f}")
