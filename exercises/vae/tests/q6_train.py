from otter.test_files import test_case

OK_FORMAT = False

name = "q6_train"
points = 4

@test_case(points=0, hidden=False)
def test_within_budget(make_model, TRAIN_CONFIG):
    from course_lib.grading import check_vae_config
    check_vae_config(make_model, TRAIN_CONFIG)

