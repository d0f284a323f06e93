from otter.test_files import test_case

OK_FORMAT = False

name = "q2_surrogate"
points = 2

@test_case(points=None, hidden=False)
def test_by_hand(sds_loss):
    import torch
    from course_lib.grading import assert_close
    z = torch.tensor([1.0, 2.0], requires_grad=True)
    grad = torch.tensor([0.5, -1.0])
    loss = sds_loss(z, grad)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0, f'sds_loss should return a scalar tensor, got {loss!r:.80}.'
    loss.backward()
    assert z.grad is not None, 'sds_loss(z, grad).backward() gave z no gradient: the loss must depend on z through autograd (stop the gradient of the target z - grad only).'
    assert_close(z.grad, grad, 'the gradient of sds_loss with respect to z = (1, 2), grad = (0.5, -1) (it should be grad: stop the gradient of the target z - grad with .detach())')
    assert_close(loss.detach(), torch.tensor(0.625), 'the value of sds_loss at z = (1, 2), grad = (0.5, -1) (1/2 ||grad||^2, summed)')

