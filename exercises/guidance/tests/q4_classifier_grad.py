from otter.test_files import test_case

OK_FORMAT = False

name = "q4_classifier_grad"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(classifier_grad):
    import math
    import torch
    from course_lib.grading import assert_close

    class Linear(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.tensor([[2.0, 0.0], [0.0, 0.0]]))

        def forward(self, x, t):
            return x.flatten(1) @ self.weight.T
    t = torch.zeros(2, dtype=torch.long)
    got = classifier_grad(Linear(), torch.zeros(2, 2), t, torch.tensor([0, 1]))
    assert_close(got, torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), 'the gradient of log p(y | x) at x = 0 for logits = W x, W = [[2, 0], [0, 0]], y = 0 (row 0) and y = 1 (row 1): W_y - sum_k p_k W_k with p = (1/2, 1/2)', rtol=1e-05, atol=1e-06)
    p0 = math.exp(2) / (1 + math.exp(2))
    got = classifier_grad(Linear(), torch.tensor([[1.0, 0.0]]), t[:1], torch.tensor([0]))
    assert_close(got, torch.tensor([[2 * (1 - p0), 0.0]]), 'the gradient of log p(0 | x) at x = (1, 0) for the same W: logits (2, 0), so (1 - p_0) W_0 with p_0 = e^2 / (1 + e^2)', rtol=1e-05, atol=1e-06)

@test_case(points=None, hidden=False)
def test_inside_no_grad_and_no_parameter_gradients(classifier_grad):
    import torch
    from course_lib.grading import assert_close

    class Linear(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.tensor([[2.0, 0.0], [0.0, 0.0]]))

        def forward(self, x, t):
            return x.flatten(1) @ self.weight.T
    classifier = Linear()
    x = torch.zeros(2, 2)
    with torch.no_grad():
        got = classifier_grad(classifier, x, torch.zeros(2, dtype=torch.long), torch.tensor([0, 1]))
    assert_close(got, torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), 'the by-hand gradient (W = [[2, 0], [0, 0]] at x = 0) computed inside torch.no_grad()', rtol=1e-05, atol=1e-06)
    assert classifier.weight.grad is None, "classifier_grad left a .grad on the classifier's parameters: it called .backward(). Use torch.autograd.grad(log_p, x_in), which returns the input's gradient and touches no parameter."
    assert x.grad is None and (not x.requires_grad), 'classifier_grad changed its input x; differentiate a detached copy.'

@test_case(points=0, hidden=False)
def test_shape_and_dtype(classifier_grad):
    import torch
    from course_lib.grading import assert_tensor
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    grad = classifier_grad(lambda x, t: net(x), torch.randn(4, 1, 8, 8), torch.arange(4), torch.tensor([0, 1, 2, 0]))
    assert_tensor(grad, 'classifier_grad on images [4, 1, 8, 8]', (4, 1, 8, 8))
    assert grad.dtype == torch.float32, f"classifier_grad should return x's dtype (float32), got {grad.dtype}."

