"""What a submission may not call while it is graded: the course's own answer to a question it is asked to write.

A formula question tests the student's formula, so during grading the ``course_lib`` function that *is* the
answer of one of the set's questions refuses calls that come from the notebook's code, with a message that says
why (``worker.refuse``). Calls from inside ``course_lib`` (a trainer or sampler that uses ``q_sample``) go through.
It is a rule stated in exercises/README.md and enforced as far as a process can enforce it on itself: a submission
that digs the original function out (``importlib.reload``, reading the source) breaks the rule, not the lock.
"""

REFERENCE_ANSWERS: dict[str, list[str]] = {
    "vae": [
        "course_lib.distributions:reparameterize",
        "course_lib.distributions:normal_kl",
        "course_lib.distributions:standard_normal_kl",
        "course_lib.vae:elbo",
    ],
    "ddpm": [
        "course_lib.schedules:cosine_betas",
        "course_lib.forward_process:q_sample",
        "course_lib.forward_process:q_posterior_mean_variance",
        "course_lib.forward_process:predict_x0_from_eps",
        "course_lib.unet:timestep_embedding",
        "course_lib.samplers:ddpm_step",
        "course_lib.losses:l_simple",
    ],
    "iddpm": [
        "course_lib.variance:learned_log_variance",
        "course_lib.likelihood:vlb_terms_from_prediction",
        "course_lib.distributions:discretized_gaussian_log_likelihood",
        "course_lib.distributions:normal_kl",
        "course_lib.schedules:respace",
        "course_lib.schedules:cosine_betas",
        "course_lib.grading.iddpm:reference_bound_profile",
    ],
    "ddim": ["course_lib.ddim:ddim_sigma", "course_lib.ddim:ddim_step", "course_lib.ddim:ddim_timesteps"],
    "guidance": ["course_lib.guidance:classifier_log_prob_grad", "course_lib.guidance:drop_labels"],
    "latent_diffusion": [
        "course_lib.latent:latent_scaling_factor",
        "course_lib.cross_attention:cross_attention",
        "course_lib.cross_attention:cross_attention_of",
    ],
    "lora": ["course_lib.lora:count_lora_parameters", "course_lib.dreambooth:dreambooth_loss_fn"],
    "sds": [
        "course_lib.sds:sds_gradient",
        "course_lib.sds:diffusion_loss_gradient",
        "course_lib.sds:sds_surrogate",
        "course_lib.render:compositing_weights",
        "course_lib.render:view_label",
        "course_lib.shapes3d:caption3d",
    ],
}
