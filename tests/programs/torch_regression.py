# A PyTorch program in the style of the tutorials this project grew from: regression of
# y = x^2 + noise with a custom nn.Module, trained, saved whole and loaded back. It is plain
# PyTorch (it runs with torch 2.13); tests/test_pytorch_program.py also runs it with the name
# `torch` bound to autograd, with nothing else changed.
import torch
from torch import nn

torch.manual_seed(1)
x = torch.unsqueeze(torch.linspace(-1, 1, 100), dim=1)  # (100, 1)
y = x.pow(2) + 0.2 * torch.rand(x.size())


class Activation_Net(nn.Module):
    def __init__(self, in_dim, n_hidden_1, n_hidden_2, out_dim):
        super(Activation_Net, self).__init__()
        self.layer1 = nn.Sequential(nn.Linear(in_dim, n_hidden_1), nn.ReLU(True))
        self.layer2 = nn.Sequential(nn.Linear(n_hidden_1, n_hidden_2), nn.ReLU(True))
        self.layer3 = nn.Sequential(nn.Linear(n_hidden_2, out_dim))

    def forward(self, x):
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return x


# torch.load (PyTorch >= 2.6) rebuilds only the classes allowed here; so does autograd's load.
torch.serialization.add_safe_globals([Activation_Net, nn.Sequential, nn.Linear, nn.ReLU])

model = Activation_Net(1, 10, 10, 1)
print(model)
optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
loss_func = torch.nn.MSELoss()

for t in range(400):
    prediction = model(x)
    loss = loss_func(prediction, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if t % 100 == 0:
        print("step", t, "loss", round(loss.item(), 4))

torch.save(model, "activation_net.pt")
model2 = torch.load("activation_net.pt")
model2.eval()
with torch.no_grad():
    difference = (model(x) - model2(x)).abs().max().item()
print("final loss", loss.item())
print("reloaded difference", difference)
print("parameters", sum(p.numel() for p in model2.parameters()))
