"""An image-classification pipeline tried out on torchvision.datasets.FakeData: augmentation transforms,
a DataLoader with workers and a seeded generator, random_split, a small CNN with BatchNorm and
AdaptiveAvgPool, top-1 accuracy and the weights enum / pretrained= handling of torchvision.models."""
import warnings

import torch
import torch.nn as nn
import torchvision
from torch.utils.data import DataLoader, random_split
from torchvision import datasets, models, transforms

transform = transforms.Compose([
    transforms.RandomHorizontalFlip(),
    transforms.RandomCrop(16, padding=2),
    transforms.ToTensor(),
    transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
])
dataset = datasets.FakeData(size=64, image_size=(3, 16, 16), num_classes=4, transform=transform)
train_set, val_set = random_split(dataset, [48, 16], generator=torch.Generator().manual_seed(42))
train_loader = DataLoader(train_set, batch_size=8, shuffle=True, num_workers=2,
                          generator=torch.Generator().manual_seed(0))
val_loader = DataLoader(val_set, batch_size=16)

model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(16, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
criterion = nn.CrossEntropyLoss()
for epoch in range(3):
    model.train()
    for images, targets in train_loader:
        optimizer.zero_grad()
        criterion(model(images), targets).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        images, targets = next(iter(val_loader))
        logits = model(images)
        val_loss = criterion(logits, targets).item()
        top1 = (logits.argmax(dim=1) == targets).float().mean().item()
    print(f"epoch {epoch}: val loss {val_loss:.4f} top-1 {top1:.3f}")

# torchvision.models' weights API, offline: None works, DEFAULT says how to get a local file.
weights = models.ResNet18_Weights.DEFAULT
print("preset:", weights.transforms())
assert models.resnet18(weights=None, num_classes=4).fc.out_features == 4
try:
    models.resnet18(weights=weights)
except RuntimeError as error:
    print("offline:", str(error).splitlines()[0][:80])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    models.resnet18(pretrained=False)
assert any("pretrained" in str(w.message) for w in caught)
print(torchvision.__name__)
print(f"final_loss={val_loss:.6f}")
