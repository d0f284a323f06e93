from otter.test_files import test_case

OK_FORMAT = False

name = "q11_train"
points = 5

@test_case(points=0, hidden=False)
def test_within_budget(make_model, TRAIN_CONFIG):
    from course_lib.grading import check_ddpm_config
    check_ddpm_config(make_model, TRAIN_CONFIG)

