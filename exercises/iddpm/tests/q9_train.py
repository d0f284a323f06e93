from otter.test_files import test_case

OK_FORMAT = False

name = "q9_train"
points = 5

@test_case(points=0, hidden=False)
def test_within_budget(make_model, TRAIN_CONFIG):
    from course_lib.grading import check_iddpm_config
    check_iddpm_config(make_model, TRAIN_CONFIG)

