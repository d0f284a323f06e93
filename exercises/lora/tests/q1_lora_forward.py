from otter.test_files import test_case

OK_FORMAT = False

name = "q1_lora_forward"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(lora_forward):
    import torch
    from course_lib.grading import assert_close
    eye = torch.eye(2)
    got = lora_forward(torch.tensor([[1.0, 2.0]]), eye, None, eye, torch.tensor([[1.0, 0.0], [0.0, 0.0]]), 1.0)
    assert_close(got, torch.tensor([[1.5, 2.0]]), 'lora_forward with W = I, A = I (rank 2), B = [[1, 0], [0, 0]], alpha = 1 on x = (1, 2) (the update is scaled by alpha / r = 1/2)')
    got = lora_forward(torch.tensor([[1.0, 2.0]]), 2 * eye, torch.tensor([1.0, -1.0]), torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0], [1.0]]), 2.0)
    assert_close(got, torch.tensor([[3.0, 9.0]]), 'lora_forward with W = 2 I, b = (1, -1), A = [[1, 1]] (rank 1), B = [[0], [1]], alpha = 2 on x = (1, 2)')

@test_case(points=0, hidden=False)
def test_shapes(lora_forward):
    import torch
    from course_lib.grading import assert_tensor
    g = torch.Generator().manual_seed(0)
    w, a, b = (torch.randn(6, 5, generator=g), torch.randn(3, 5, generator=g), torch.randn(6, 3, generator=g))
    assert_tensor(lora_forward(torch.randn(2, 7, 5, generator=g), w, torch.zeros(6), a, b, 3.0), 'lora_forward of x [2, 7, 5] with W [6, 5], rank 3', (2, 7, 6))

